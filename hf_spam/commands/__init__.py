"""What each recipe runs: ``main(argv)`` parses the recipe's flags and calls one library function.

Each module runs as ``python -m hf_spam.commands.<name>`` (or ``accelerate launch -m ...``), which is how
the study runner starts recipes from an installed package; the scripts under ``recipes/`` call the same
``main``. A user error ends with one line on stderr (:func:`hf_spam.cli.run_main`).
"""
