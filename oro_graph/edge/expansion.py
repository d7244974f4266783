"""What a document asks once its fragments are expanded, each fragment counted once.

Strawberry's depth and alias limiters, the cost walker and graphql-core's check that repeated fields
can be merged all expand a fragment wherever it is spread. A document whose fragments each spread
the previous one twice (a "fragment bomb") doubles their work with every fragment: 16 fragments,
170 tokens, took 0.9 s to refuse, and 25 would take minutes. Here a fragment's totals are computed
once and reused, so the counts cost the document's size, and a document too large once expanded
is refused before anything expands it.

The second measure is for graphql-core's OverlappingFieldsCanBeMerged rule, which compares every
pair of fields selected under the same response name at the same place: 500 copies of
``currentSuite { suiteId }`` (2,500 tokens, no alias) took 1.7 s to validate. ``repeated_pairs``
counts those pairs on the expanded document (bounded by then).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True)
class Totals:
    fields: int  # field selections once fragments are expanded
    aliases: int
    # Top-level fields at 0 and inline fragments add none, as QueryDepthLimiter counts; unlike it,
    # introspection fields count like any other (a nested `__schema` selection is as deep as it looks).
    depth: int


_EMPTY = Totals(0, 0, 0)


class Expansion:
    """Totals of a document's operations and fragments, each fragment computed once."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments: Mapping[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self._done: dict[str, Totals] = {}
        self._open: set[str] = set()  # fragments being counted: a cycle counts nothing (it is invalid)

    def totals(self, operation: OperationDefinitionNode) -> Totals:
        return self._selections(operation.selection_set)

    def _selections(self, selection_set: SelectionSetNode | None) -> Totals:
        if selection_set is None:
            return _EMPTY
        fields = aliases = depth = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner = self._selections(selection.selection_set)
                fields += 1 + inner.fields
                aliases += (selection.alias is not None) + inner.aliases
                if selection.selection_set is not None:
                    depth = max(depth, 1 + inner.depth)
                continue
            if isinstance(selection, InlineFragmentNode):
                inner = self._selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                inner = self._fragment(selection.name.value)
            else:
                continue
            fields += inner.fields
            aliases += inner.aliases
            depth = max(depth, inner.depth)
        return Totals(fields, aliases, depth)

    def _fragment(self, name: str) -> Totals:
        done = self._done.get(name)
        if done is not None:
            return done
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return _EMPTY
        self._open.add(name)
        try:
            totals = self._selections(fragment.selection_set)
        finally:
            self._open.discard(name)
        self._done[name] = totals
        return totals

    def repeated_pairs(self, operation: OperationDefinitionNode) -> tuple[int, str, int]:
        """Pairs of fields at the same response path, and the most repeated path with its count.

        Walks the expanded operation: call it only once ``totals(operation).fields`` is bounded.
        """
        counts: Counter[str] = Counter()
        self._count(operation.selection_set, "", counts, frozenset())
        pairs = sum(n * (n - 1) // 2 for n in counts.values())
        path, most = counts.most_common(1)[0] if counts else ("", 0)
        return pairs, path, most

    def _count(
        self, selection_set: SelectionSetNode | None, path: str, counts: Counter[str], open_: frozenset[str]
    ) -> None:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                here = f"{path}.{(selection.alias or selection.name).value}".lstrip(".")
                counts[here] += 1
                self._count(selection.selection_set, here, counts, open_)
            elif isinstance(selection, InlineFragmentNode):
                self._count(selection.selection_set, path, counts, open_)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in open_:
                    self._count(fragment.selection_set, path, counts, open_ | {name})
