"""The paper's benchmarks as functions that return tidy tables, and their command line.

Run ``python -m remi_tutorial.benchmarks --help`` (or ``remi-tutorial --help``) for the
commands. Each benchmark lives in its own module, which defines ``add_arguments(parser)``,
``main(args)`` and ``EXAMPLES`` for the command line besides the functions a notebook calls;
:mod:`~remi_tutorial.benchmarks.cli` holds what the commands share.
"""
