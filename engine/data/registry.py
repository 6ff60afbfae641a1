"""The datasets kirec knows by name: where their files live, how to read them and where to fetch them."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from engine.data.errors import DataError

# SHA-256 of the copies in ../shared/data (its SHA256SUMS), keyed by file name. They verify a download or an
# extraction only where the fetched file is the same file: GroupLens' latest-small zip holds exactly these CSVs,
# whereas the shared ml-100k and amazon-beauty copies are derived files (RecBole atomic, P5 sequences).
_ML_LATEST_SMALL_SHA256 = {
    "README.txt": "caa1eb1d1d113578e9dbb36b37398404e00f379492b7aa31df0b30c855017095",
    "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
    "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
    "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
}
_ML_100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
_AMAZON_BEAUTY_SHA256 = {
    "items.jsonl": "5465c3f9a8df9680f6eab3bd0e8feea4918a5c452bc7c9a097119961342e9063",
    "user_sequence.txt": "47197cbee7bdc1896926e10d96b807dce0aecb9a1f0c2ccc887c21090237c9b7",
}

_MCAULEY_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"


@dataclass(frozen=True)
class Layout:
    """One way a dataset's folder can be laid out: the loader format and the files it needs."""

    format: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # folder name under a data root
    format: str  # loader format (engine.data.formats); for a found dataset, the layout detected
    description: str
    files: tuple[str, ...]  # files the loader needs, for `format`
    urls: tuple[str, ...] = ()  # canonical downloads; zips are extracted into the folder
    sha256: Mapping[str, str] = field(default_factory=dict, hash=False)  # file name -> known SHA-256
    licence: str = ""
    alternatives: tuple[Layout, ...] = ()  # other layouts accepted in the same folder
    # ml-100k: RecBole atomic files (the shared copy) or GroupLens' u.data/u.item (what its zip holds);
    # amazon-beauty: P5's user_sequence.txt + items.jsonl, or the raw McAuley files (what the URLs give).

    @property
    def layouts(self) -> tuple[Layout, ...]:
        return (Layout(self.format, self.files), *self.alternatives)


_SPECS: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            DatasetSpec(
                name="ml-latest-small",
                folder="ml-latest-small",
                format="movielens-csv",
                description="MovieLens latest-small: 610 users, 9,724 movies, 100,836 ratings (the default)",
                files=("ratings.csv", "movies.csv"),
                urls=("https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",),
                sha256=MappingProxyType(_ML_LATEST_SMALL_SHA256),
                licence="GroupLens terms (README.txt): non-commercial, redistribution under the same terms; "
                "cite Harper & Konstan 2015.",
            ),
            DatasetSpec(
                name="ml-1m",
                folder="ml-1m",
                format="movielens-dat",
                description="MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 ratings",
                files=("ratings.dat", "movies.dat"),
                urls=("https://files.grouplens.org/datasets/movielens/ml-1m.zip",),
                licence="GroupLens terms: research use, no redistribution; cite Harper & Konstan 2015.",
            ),
            DatasetSpec(
                name="ml-100k",
                folder="ml-100k",
                format="recbole-atomic",
                description="MovieLens 100K: 943 users, 1,682 movies, 100,000 ratings",
                files=("ml-100k.inter", "ml-100k.item"),
                urls=("https://files.grouplens.org/datasets/movielens/ml-100k.zip",),
                sha256=MappingProxyType(_ML_100K_SHA256),
                licence="GroupLens terms: research use, no redistribution; cite Harper & Konstan 2015.",
                alternatives=(Layout("movielens-100k", ("u.data", "u.item")),),
            ),
            DatasetSpec(
                name="amazon-beauty",
                folder="amazon-beauty",
                format="amazon-sequence",
                description="Amazon 2014 Beauty 5-core: 22,363 users, 12,101 items, 198,502 interactions",
                files=("user_sequence.txt", "items.jsonl"),
                urls=(_MCAULEY_2014 + "reviews_Beauty_5.json.gz", _MCAULEY_2014 + "meta_Beauty.json.gz"),
                sha256=MappingProxyType(_AMAZON_BEAUTY_SHA256),
                licence="McAuley lab data: research use; cite He & McAuley 2016, McAuley et al. 2015.",
                alternatives=(Layout("amazon-raw", ("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz")),),
            ),
        )
    }
)


def list_datasets() -> list[DatasetSpec]:
    """Every registered dataset, the embedded default first."""
    return list(_SPECS.values())


def get_spec(name: str) -> DatasetSpec | None:
    return _SPECS.get(name)


def require_spec(name: str) -> DatasetSpec:
    spec = _SPECS.get(name)
    if spec is None:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(_SPECS)})")
    return spec
