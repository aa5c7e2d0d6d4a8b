"""llmrec: generative recommendation with LLMs.

Stages, in data-flow order: data -> ids -> prompts -> train -> generate -> evaluate.
"""

from llmrec.config import Config, load_config
from llmrec.errors import InputError
from llmrec.generate import Recommendation, Recommender

__all__ = ["Config", "InputError", "Recommendation", "Recommender", "load_config"]
__version__ = "0.1.0"
