"""The scripted agent run every framework integration is tested with: 30 tool calls whose results run to tens
of thousands of tokens, packed into 8,000."""

TURNS = 30
BUDGET = 8000
INSTRUCTIONS = "You are a careful agent. Read the logs, then say what broke."
TASK = "The nightly build failed. Find out why."


def log(step: int) -> str:
    """The build log ``read_log`` returns for one step (about 2,100 tokens)."""
    return "\n".join(f"step {step} line {line}: compiling module_{line} ... ok" for line in range(150))
