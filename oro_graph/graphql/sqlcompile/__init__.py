"""Queries compiled to one SQL statement that builds the answer's JSON in PostgreSQL (issue 13 item 2).

``mapping`` says which GraphQL types and fields the compiler knows (type -> table, field -> column or
expression, relation -> correlated subquery, connection -> keyset page), ``compiler`` turns a
validated operation into the statement or declines, ``wire`` writes the graph's wire formats in SQL,
and ``executor`` is the hook: Strawberry's executor for everything the compiler declines.
"""
