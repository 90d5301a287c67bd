"""SAKD: the distillation task, its losses, the feature-weight schedule and the feature taps."""

from sakd.distill.losses import feature_kd, logits_kd
from sakd.distill.schedule import FeatureWeight
from sakd.distill.taps import FeatureTaps
from sakd.distill.task import (
                               KD_MODES,
                               ClassificationTask,
                               DistillationTask,
                               SAKDStudent,
                               TaskOutput,
                               check_taps_match,
                               feature_shapes,
)

__all__ = ["KD_MODES", "ClassificationTask", "DistillationTask", "FeatureTaps", "FeatureWeight",
           "SAKDStudent", "TaskOutput", "check_taps_match", "feature_kd", "feature_shapes",
           "logits_kd"]
