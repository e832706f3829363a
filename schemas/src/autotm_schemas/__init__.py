"""autotm-schemas: the contracts between the AutoTM tools and the code that enforces them."""

from .atomic import atomic_path, write_bytes_atomic, write_text_atomic
from .documents import (
    DOCUMENT_KINDS,
    document_schema,
    read_document,
    validate_document,
    write_document,
)
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INFEASIBLE,
    EXIT_OK,
    BadInputError,
    InfeasibleError,
    SchemaError,
    ToolError,
)
from .tables import (
    TABLE_KINDS,
    arrow_type,
    read_table,
    table_contract,
    table_schema,
    validate_table,
    write_table,
)

__version__ = "0.1.0"

__all__ = [
    "DOCUMENT_KINDS",
    "EXIT_BAD_INPUT",
    "EXIT_CODES_HELP",
    "EXIT_FAILURE",
    "EXIT_INFEASIBLE",
    "EXIT_OK",
    "TABLE_KINDS",
    "BadInputError",
    "InfeasibleError",
    "SchemaError",
    "ToolError",
    "arrow_type",
    "atomic_path",
    "document_schema",
    "read_document",
    "read_table",
    "table_contract",
    "table_schema",
    "validate_document",
    "validate_table",
    "write_bytes_atomic",
    "write_document",
    "write_table",
    "write_text_atomic",
]
