"""Per-chunk statistics: streaming moments, the sums of one training pass, and pass requests."""

from .moments import ColumnMoments, DataMoments, Standardizer
from .pass_stats import PassStatistics, augment, block_statistics, hidden_features, pattern
from .passes import Holdout, MomentsRequest, PassRequest, StatisticsRequest, accumulate

__all__ = [
    "ColumnMoments",
    "DataMoments",
    "Holdout",
    "MomentsRequest",
    "PassRequest",
    "PassStatistics",
    "Standardizer",
    "StatisticsRequest",
    "accumulate",
    "augment",
    "block_statistics",
    "hidden_features",
    "pattern",
]
