"""Small helpers shared by the reference pipeline's components."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["spark_frame"]


def spark_frame(spark: SparkSession, frame: pd.DataFrame, schema: StructType) -> DataFrame:
    """pandas -> Spark with an explicit schema (empty frames have no types to infer)."""
    frame = frame[[f.name for f in schema.fields]]
    if frame.empty:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(frame, schema=schema)
