"""Figures and tables of the provenance report (``snakemake --report``).

Pure functions: data in, a matplotlib :class:`~matplotlib.figure.Figure` or a table out.
``tables`` builds the frames and HTML pages, ``figures`` the charts, ``output`` writes them with
reproducible bytes. Nothing here knows about Snakemake or the workflow's paths.
"""
