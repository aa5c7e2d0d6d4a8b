from llmrec.cli import app

app()
