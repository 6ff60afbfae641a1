"""Fixed reductions (PCA, whitened PCA, random projection) against direct numpy computations, and the adapters."""

import numpy as np
import pytest
import torch

from engine.semantic.reduction import fit_pca, fit_random_projection, fit_reduction, make_adapter, reduce_table


def low_rank_data(n=200, e=48, seed=0):
    """Correlated data with a decaying spectrum and a large common offset (like sentence embeddings)."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.05, e)
    return rng.standard_normal((n, e)) * scales @ np.linalg.qr(rng.standard_normal((e, e)))[0] + 5.0


def covariance_eigen(x: np.ndarray):
    """The reference PCA: eigenvectors of the sample covariance, largest eigenvalue first (not the SVD recipe)."""
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def align_signs(columns: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flip each column of `columns` to point the way its reference column does (a component's sign is arbitrary)."""
    signs = np.sign(np.sum(columns * reference, axis=0))
    return columns * np.where(signs == 0, 1.0, signs)


def test_pca_matches_the_covariance_eigenvectors_and_explained_variance():
    x = low_rank_data()
    fitted = fit_pca(x, 10)
    values, vectors = covariance_eigen(x)
    # one sign per component for the whole column, not elementwise absolute values
    np.testing.assert_allclose(align_signs(fitted.projection, vectors[:, :10]), vectors[:, :10], atol=1e-8)
    np.testing.assert_allclose(fitted.explained_variance_ratio, values[:10] / values.sum(), rtol=1e-8)
    assert fitted.info()["explained_variance"] == pytest.approx(values[:10].sum() / values.sum())
    assert len(fitted.info()["explained_variance_ratio"]) == 10
    np.testing.assert_allclose(fitted.mean, x.mean(axis=0), rtol=1e-12)
    # the reduced coordinates are the centred data on those axes, each column with the sign its axis has
    reduced = fitted.transform(x)
    signs = np.sign(np.sum(fitted.projection * vectors[:, :10], axis=0))
    np.testing.assert_allclose(reduced, (x - x.mean(axis=0)) @ vectors[:, :10] * signs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(reduced.var(axis=0, ddof=1), values[:10], rtol=1e-4)


def test_pca_components_are_ordered_by_variance():
    ratio = fit_pca(low_rank_data(), 20).explained_variance_ratio
    assert np.all(np.diff(ratio) <= 1e-12)


def test_whitened_pca_has_unit_variance_and_no_correlation():
    x = low_rank_data()
    reduced = fit_pca(x, 12, whiten=True).transform(x)
    np.testing.assert_allclose(np.cov(reduced, rowvar=False), np.eye(12), atol=1e-4)


def test_pca_with_fewer_items_than_dims_pads_with_zero_components():
    x = low_rank_data(n=5, e=16)
    fitted = fit_pca(x, 8, whiten=True)
    assert fitted.components_used == 4  # 5 centred points span 4 dimensions
    reduced = fitted.transform(x)
    assert np.all(reduced[:, 4:] == 0) and np.isfinite(reduced).all()
    assert "only 4 of 8" in fitted.notes[0]
    assert fitted.explained_variance_ratio.sum() == pytest.approx(1.0)


def test_random_projection_is_seeded_and_roughly_preserves_distances():
    x = low_rank_data(n=60, e=64)
    a, b, c = (
        fit_random_projection(x, 256, seed=7),
        fit_random_projection(x, 256, seed=7),
        fit_random_projection(x, 256, seed=8),
    )
    np.testing.assert_array_equal(a.projection, b.projection)
    assert not np.allclose(a.projection, c.projection)
    before = np.linalg.norm(x[:30] - x[30:], axis=1)
    after = np.linalg.norm(a.transform(x[:30]) - a.transform(x[30:]), axis=1)
    assert np.mean(after / before) == pytest.approx(1.0, abs=0.15)


def test_random_projection_centres_the_data_first():
    x = low_rank_data(n=60, e=64)  # every row carries a large common offset (5.0 in each dimension)
    fitted = fit_random_projection(x, 16, seed=3)
    np.testing.assert_allclose(fitted.mean, x.mean(axis=0), rtol=1e-12)
    reduced = fitted.transform(x)
    np.testing.assert_allclose(reduced, (x - x.mean(axis=0)) @ fitted.projection, rtol=1e-5, atol=1e-5)
    # centred: the reduced vectors average to zero, and a shifted catalogue reduces to the same vectors
    np.testing.assert_allclose(reduced.mean(axis=0), 0.0, atol=1e-5)
    shifted = fit_random_projection(x + 100.0, 16, seed=3).transform(x + 100.0)
    np.testing.assert_allclose(shifted, reduced, atol=1e-3)


def test_reduce_table_fits_on_real_items_and_keeps_padding_zero():
    x = low_rank_data(n=50, e=16)
    table = np.vstack([np.zeros((1, 16)), x]).astype(np.float32)
    reduced, fitted = reduce_table("pca", table, 4)
    assert reduced.shape == (51, 4) and reduced.dtype == np.float32
    assert np.all(reduced[0] == 0)
    np.testing.assert_allclose(fitted.mean, x.mean(axis=0), rtol=1e-5)  # the padding row did not shift the mean


def test_fit_reduction_rejects_adapters_unknown_names_and_bad_input():
    x = low_rank_data(n=10, e=8)
    with pytest.raises(ValueError, match="learned adapter"):
        fit_reduction("adapter-mlp", x, 4)
    with pytest.raises(ValueError, match="knowledge.reduction: unknown 'lda'"):
        fit_reduction("lda", x, 4)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_reduction("pca", x, 4)


def test_adapters_map_e_to_d():
    linear = make_adapter("adapter-linear", 32, 8)
    mlp = make_adapter("adapter-mlp", 32, 8)
    x = torch.randn(5, 32)
    assert linear(x).shape == (5, 8) and mlp(x).shape == (5, 8)
    assert mlp[0].out_features == 16  # E/2 hidden by default
    assert any(isinstance(m, torch.nn.GELU) for m in mlp) and any(isinstance(m, torch.nn.Dropout) for m in mlp)
    assert make_adapter("adapter-mlp", 32, 8, hidden=40)[0].out_features == 40
