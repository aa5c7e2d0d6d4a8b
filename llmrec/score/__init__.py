"""After mix: offline batch scoring of the run's recommender (`llmrec.load`'s) to
Parquet/JSONL, sharded and resumable; `ray_pipeline` spreads it over a Ray cluster."""

from llmrec.score.batch import ScoreRequest, score_users

__all__ = ["ScoreRequest", "score_users"]
