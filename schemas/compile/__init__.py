"""What a dataset definition (``schemas.model``) is compiled to, one module per target.

- ``polars_checks``: every check and rule as a polars expression (``compiled_checks``), which the
  validator evaluates directly as a shortcut and from which the pandera schema is made;
- ``pandera_schema``: the pandera (polars) schema (``pandera_schema``), the only module of
  ``schemas`` that imports pandera;
- ``publication``: the forms the API serves: the JSON definition and its fingerprint, the
  Frictionless Table Schema and the CSV template;
- ``derive``: a dataset's derivations as one polars query over its validated rows.

Nothing is imported here, so reading definitions or publishing them never loads pandera.
"""
