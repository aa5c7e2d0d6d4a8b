"""Stage 7: offline batch scoring to Parquet/JSONL, sharded and resumable."""

from llmrec.score.batch import ScoreRequest, score_users

__all__ = ["ScoreRequest", "score_users"]
