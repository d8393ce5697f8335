"""The paper's benchmarks as functions that return tidy tables, and their command line.

Run ``python -m remi_tutorial.benchmarks --help`` for the commands. Each benchmark lives in
its own module, which defines ``add_arguments(parser)`` and ``main(args)`` for the command
line besides the functions a notebook calls.
"""
