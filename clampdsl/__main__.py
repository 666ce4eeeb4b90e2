from clampdsl.cli import app

app(prog_name="clampdsl")
