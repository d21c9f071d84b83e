"""Query contracts: questions with exactly one answering module.

A query is a frozen msgspec Struct; its `Result` is documented on the class. The answering
module registers a handler with the query bus; asking a query nobody answers is a bug.
"""

from src.common.queries.base import Query

__all__ = ["Query"]
