"""Task kinds: what differs between classification and span extraction.

  base.py            `TaskKind`, the interface the one trainer runs, and `Split`
  classification.py  `ClassifierConfig`, `ClassificationKind` (GLUE, custom files)
  squad.py           `SquadConfig`, `SpanKind` (SQuAD v1.1)
"""
