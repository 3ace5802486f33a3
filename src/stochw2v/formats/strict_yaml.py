"""Recipes read as plain data, strictly: YAML's safe subset, without the parts that hurt a recipe.

* No anchors or aliases: an alias can multiply one node into billions ("billion laughs") and a
  recipe has no need to repeat itself by reference.
* No duplicate keys: PyYAML keeps the last one silently, so `lr: 1e-3` twice hides a typo.
* At most MAX_DEPTH levels of nesting: deeper input is an attack or a mistake, refused before the
  parser recurses into it.
"""
from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError

MAX_DEPTH = 32  # recipes nest 3 levels; the limit is far above that and far below Python's recursion limit


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases, duplicate keys and deep nesting."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed "
                              "in recipes; write the value out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not allowed "
                              "in recipes")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value") from None
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first on line "
                                  f"{seen[key]}); the later value would silently win")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """Plain data from YAML text; ConfigError (with the line) for invalid YAML or a refused construct."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML ({error})") from None
    except RecursionError:
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep") from None


class _PlainDumper(yaml.SafeDumper):
    """safe_dump that writes a value seen twice out again instead of as an alias (which load_strict refuses)."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - every value, whatever it is
        return True


def dump_plain(data: Any) -> str:
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False)


__all__ = ["MAX_DEPTH", "StrictLoader", "dump_plain", "load_strict"]
