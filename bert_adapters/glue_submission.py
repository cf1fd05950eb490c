"""`python -m bert_adapters.glue_submission`: the GLUE submission bundle.

The command's home is `bert_adapters/cli/glue_submission.py`; this module keeps
its documented name.
"""

from bert_adapters.cli import glue_submission

if __name__ == "__main__":
    glue_submission.run()
