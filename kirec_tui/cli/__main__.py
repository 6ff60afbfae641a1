from kirec_tui.cli import main

main()
