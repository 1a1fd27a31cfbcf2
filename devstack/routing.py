"""API Gateway route matching: the resources (paths) the template declares and which one a request hits."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from devstack.template import Route


@dataclass(frozen=True)
class Resource:
    """An API Gateway resource (path) and the methods the template declares on it."""

    path: str
    segments: tuple[str, ...]
    methods: dict[str, str]  # method -> function logical id ("ANY" matches every method)

    def match(self, segments: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
        """(specificity, path parameters) when the request path fits this resource."""
        rank: list[int] = []
        params: dict[str, str] = {}
        for i, pattern in enumerate(self.segments):
            if pattern.startswith("{") and pattern.endswith("+}"):  # greedy: the rest of the path
                if i >= len(segments) or not "".join(segments[i:]):
                    return None
                params[pattern[1:-2]] = unquote("/".join(segments[i:]))
                return (*rank, 2), params
            if i >= len(segments):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segments[i]:
                    return None
                params[pattern[1:-1]] = unquote(segments[i])
                rank.append(1)
            elif unquote(segments[i]) == pattern:
                rank.append(0)
            else:
                return None
        return (tuple(rank), params) if len(segments) == len(self.segments) else None

    def function_for(self, method: str) -> str | None:
        return self.methods.get(method) or self.methods.get("ANY")

    def allow(self) -> str:
        if "ANY" in self.methods:
            return "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
        return ", ".join(sorted(self.methods))


def build_resources(routes: list[Route]) -> list[Resource]:
    """One resource per declared path; a method declared twice on a path must name one function."""
    by_path: dict[str, dict[str, str]] = {}
    for route in routes:
        methods = by_path.setdefault(route.path, {})
        if route.method in methods and methods[route.method] != route.function:
            raise ValueError(f"{route.method} {route.path} is declared by {methods[route.method]} and {route.function}")
        methods[route.method] = route.function
    return [Resource(path, tuple(path.strip("/").split("/")), methods) for path, methods in by_path.items()]


def find_resource(resources: list[Resource], path: str) -> tuple[Resource, dict[str, str]] | None:
    """The most specific resource for `path`: literal segments beat {param}, which beats {proxy+}."""
    if not path.startswith("/"):
        return None
    segments = path.strip("/").split("/")
    matches = [(m[0], r, m[1]) for r in resources if (m := r.match(segments)) is not None]
    if not matches:
        return None
    _, resource, params = min(matches, key=lambda m: m[0])
    return resource, params
