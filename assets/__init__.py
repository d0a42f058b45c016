"""The reference pipeline: rideshare tip prediction (the mltrace paper's example).

raw trips -> cleaned trips (daily ETL) -> features (daily) -> training set and model (weekly,
registered in MLflow) -> predictions (daily batch inference) -> labels (late) -> evaluation.
"""

from .drift import DRIFT_TARGETS, data_drift, data_profiles
from .etl import cleaned_trips, raw_trips
from .evaluation import model_evaluation
from .faults import FaultPlan, parse_faults
from .features import trip_features
from .inference import tip_predictions
from .labels import trip_labels
from .partitions import SIM_START, daily, weekly
from .resources import TripSimulatorResource
from .simulation import World
from .training import MODEL_NAME, tip_model, training_set

PIPELINE_ASSETS = [raw_trips, cleaned_trips, trip_features, trip_labels, training_set, tip_model,
                   tip_predictions, model_evaluation, data_profiles, data_drift]

__all__ = [
                   "DRIFT_TARGETS",
                   "MODEL_NAME",
                   "PIPELINE_ASSETS",
                   "SIM_START",
                   "FaultPlan",
                   "TripSimulatorResource",
                   "World",
                   "cleaned_trips",
                   "daily",
                   "data_drift",
                   "data_profiles",
                   "model_evaluation",
                   "parse_faults",
                   "raw_trips",
                   "tip_model",
                   "tip_predictions",
                   "training_set",
                   "trip_features",
                   "trip_labels",
                   "weekly",
]
