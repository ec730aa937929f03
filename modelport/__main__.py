from modelport.cli import run

run()
