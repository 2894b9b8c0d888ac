"""Implicit-feedback matrix factorisation (ALS): `implicit` beside DuckDB, MLlib on Spark.

Both learn item factors from the time-decayed strengths (confidence 1 + alpha·s); the
products whose factors point the same way become each product's neighbours, served like
co-occurrence neighbours. `user_scores` ranks with the person's own factors, as the
libraries recommend natively (reported beside, in the evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from ibis.backends import BaseBackend
from numpy.typing import NDArray
from scipy import sparse

from accord.engine.connection import is_spark, spark_session


@dataclass(frozen=True)
class Settings:
    factors: int = 16
    regularization: float = 0.1
    iterations: int = 15
    alpha: float = 1.0
    seed: int = 7


@dataclass(frozen=True)
class Factors:
    people: list[str]
    person_factors: NDArray[np.float64]
    products: list[str]
    product_factors: NDArray[np.float64]
    library: str


def _indexed(table: pa.Table) -> tuple[list[str], list[str], Any]:
    columns = table.to_pydict()
    people = sorted(set(columns["profile_id"]))
    products = sorted(set(columns["product_id"]))
    person_at = {p: i for i, p in enumerate(people)}
    product_at = {p: i for i, p in enumerate(products)}
    matrix = sparse.csr_matrix(
        (
            np.asarray(columns["strength"], dtype=np.float32),
            (
                np.asarray([person_at[p] for p in columns["profile_id"]]),
                np.asarray([product_at[p] for p in columns["product_id"]]),
            ),
        ),
        shape=(len(people), len(products)),
    )
    return people, products, matrix


def fit_implicit(strengths: pa.Table, settings: Settings = Settings()) -> Factors:
    """ALS of the `implicit` package on the strengths (profile_id, product_id, strength)."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    people, products, matrix = _indexed(strengths)
    # `implicit` runs its own threads (num_threads=0: one per core); BLAS threads inside
    # them would oversubscribe the cores, which `implicit` warns of unless BLAS has one.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.factors,
            regularization=settings.regularization,
            alpha=settings.alpha,
            iterations=settings.iterations,
            random_state=settings.seed,
            num_threads=0,
        )
        model.fit(matrix, show_progress=False)
    return Factors(
        people=people,
        person_factors=np.asarray(model.user_factors, dtype=np.float64),
        products=products,
        product_factors=np.asarray(model.item_factors, dtype=np.float64),
        library="implicit",
    )


def fit_spark(backend: BaseBackend, strengths: Any, settings: Settings = Settings()) -> Factors:
    """Spark MLlib's implicit ALS on the strengths table of a Spark backend."""
    from pyspark.ml.recommendation import ALS

    if not is_spark(backend):
        raise ValueError("Spark MLlib ALS needs the Spark engine")
    table = backend.to_pyarrow(strengths.select("profile_id", "product_id", "strength"))
    people, products, matrix = _indexed(table)
    coo = matrix.tocoo()
    frame = spark_session(backend).createDataFrame(
        pa.table(
            {
                "person": pa.array(coo.row, type=pa.int32()),
                "product": pa.array(coo.col, type=pa.int32()),
                "strength": pa.array(coo.data, type=pa.float32()),
            }
        )
    )
    model = ALS(
        rank=settings.factors,
        maxIter=settings.iterations,
        regParam=settings.regularization,
        alpha=settings.alpha,
        implicitPrefs=True,
        userCol="person",
        itemCol="product",
        ratingCol="strength",
        seed=settings.seed,
        coldStartStrategy="drop",
    ).fit(frame)

    def dense(factors: Any, size: int) -> NDArray[np.float64]:
        out = np.zeros((size, settings.factors))
        for row in factors.collect():
            out[row["id"]] = row["features"]
        return out

    return Factors(
        people=people,
        person_factors=dense(model.userFactors, len(people)),
        products=products,
        product_factors=dense(model.itemFactors, len(products)),
        library="Spark MLlib",
    )


def neighbours_of(factors: Factors, *, top_k: int = 50) -> dict[str, list[tuple[str, float]]]:
    """Each product's `top_k` products by cosine of their factors (positive ones only)."""
    vectors = factors.product_factors
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms == 0, 1.0, norms)[:, None]
    found: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(unit), 1024):
        block = unit[start : start + 1024] @ unit.T
        for offset, row in enumerate(block):
            index = start + offset
            row[index] = -np.inf
            best = np.argsort(-row, kind="stable")[:top_k]
            found[factors.products[index]] = [
                (factors.products[j], float(row[j])) for j in best if row[j] > 0
            ]
    return found


def user_scores(factors: Factors, at: int) -> dict[str, float]:
    """The native ALS score of every product for the person at row `at` of the factors."""
    scores = factors.product_factors @ factors.person_factors[at]
    return dict(zip(factors.products, map(float, scores), strict=True))
