"""llmrec: generative recommendation with LLMs.

Stages, in data-flow order: data -> ids -> prompts -> train -> generate -> evaluate / explain / score.
"""

import logging

# bitsandbytes (imported by peft) warns on every CPU import that an optional 4-bit CPU kernel is
# missing; 4-bit is a GPU-only feature here (QLoRA), so the warning is noise for every command.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from llmrec.config import Config, load_config  # noqa: E402 (after the logging setting)
from llmrec.errors import InputError  # noqa: E402
from llmrec.explain import Explainer  # noqa: E402
from llmrec.generate import Recommendation, Recommender  # noqa: E402

__all__ = ["Config", "Explainer", "InputError", "Recommendation", "Recommender", "load_config"]
__version__ = "0.1.0"
