"""textkit: small text utilities — slugs, wrapping, casing and a tiny template engine."""

from textkit.casing import camel_to_snake, kebab_case, snake_to_camel, title_case
from textkit.slug import slugify
from textkit.template import Template, TemplateError, render
from textkit.wrap import dedent_block, wrap

__all__ = [
    "Template",
    "TemplateError",
    "camel_to_snake",
    "dedent_block",
    "kebab_case",
    "render",
    "slugify",
    "snake_to_camel",
    "title_case",
    "wrap",
]
