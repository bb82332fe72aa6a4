"""An Azure-OpenAI-compatible vision chat-completions emulator (aiohttp).

It stands in for the real service when trying the tool, in tests and in benchmarks: Azure
classic, Azure v1 and OpenAI-style routes, the legacy gpt-4 vision-preview enhancement route
and Azure AI Vision's read route (both with real OCR by Tesseract), Azure's auth and error
bodies, per-model image-token maths, text counted with the model's real tokenizer (tiktoken,
loaded offline by the emulator itself), admission-time token and request windows, answers
that name the image received, seeded fault injection (``Fault``), stats and a request log. It imports nothing
from the rest of ``batch``: it is a foreign service, so the client cannot pass a test by
agreeing with itself.
"""

from .app import create_app
from .command import main
from .config import Deployment, EmulatorConfig
from .faults import Fault
from .latency import LatencyModel
from .server import EmbeddedEmulator

__all__ = ["Deployment", "EmbeddedEmulator", "EmulatorConfig", "Fault", "LatencyModel", "create_app", "main"]
