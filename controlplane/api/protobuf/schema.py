"""Vocabulary of the protobuf schema tables: value types, field flags, and the table shapes.

A message is `{field number: (json name, type, flags)}`. The type is a scalar (`STR`, `I32`, ...),
a well-known type converted to its JSON form (`TIME`, `QUANTITY`, `INTORSTR`, ...), or the name of
another message ("core.PodSpec"). A json name of "" marks a Go struct embedded inline, whose keys
merge into the parent. The tables themselves live in schema_meta, schema_core and schema_groups.
"""

from __future__ import annotations

from typing import Final

# Scalars, decoded from varint or length-delimited fields.
STR: Final = "string"
BYTES: Final = "bytes"  # base64 text in JSON
BOOL: Final = "bool"
I32: Final = "int32"
I64: Final = "int64"

# Well-known messages with a custom JSON form.
TIME: Final = "Time"  # meta/v1 Time {1: seconds, 2: nanos} -> "2006-01-02T15:04:05Z"; empty: absent
MICROTIME: Final = "MicroTime"  # as Time, with six fractional digits
DURATION: Final = "Duration"  # meta/v1 Duration {1: nanoseconds} -> Go text "1h2m3s"
QUANTITY: Final = "Quantity"  # resource.Quantity {1: string} -> "500m"
INTORSTR: Final = "IntOrString"  # intstr {1: type, 2: intVal, 3: strVal} -> 8080 or "http"
FIELDSV1: Final = "FieldsV1"  # meta/v1 FieldsV1 {1: raw JSON} -> the JSON object

SCALARS: Final = frozenset({STR, BYTES, BOOL, I32, I64})
VARINTS: Final = frozenset({BOOL, I32, I64})
SPECIALS: Final = frozenset({TIME, MICROTIME, DURATION, QUANTITY, INTORSTR, FIELDSV1})

# Field flags.
LIST: Final = 1  # repeated: a JSON array
MAP: Final = 2  # map<string, type>: a JSON object; the type names the value
KEEP: Final = 4  # a scalar Go's JSON keeps even when zero (a pointer, or no omitempty)

Field = tuple[str, str, int]
Message = dict[int, Field]
