"""drg_workflow: pure, Snakemake-agnostic functions behind the drg-workflow rules.

The modules know nothing about Snakemake or file locations: rule scripts in ``scripts/`` read
``snakemake.input``/``params``, call these functions and write ``snakemake.output``.
"""

__version__ = "0.1.0"
