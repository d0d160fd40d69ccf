"""The Sparkplug B payload as protobuf messages, built with protobuf's descriptor API.

The message and field numbers are those of Eclipse Tahu's `sparkplug_b.proto`
(package `org.eclipse.tahu.protobuf`, proto2; Copyright (c) 2015, 2018 Cirrus Link Solutions and
others, EPL-2.0, https://github.com/eclipse/tahu). Only the parts the agent reads are declared:
a payload's timestamp, metrics, seq, uuid and body; a metric's name, alias, timestamp, datatype,
flags and scalar values. DataSet, Template, PropertySet and MetaData values are left undeclared,
so protobuf skips them as unknown fields (a metric holding one has no scalar value).
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as DecodeError  # what a bad payload raises

_PACKAGE: Final = "org.eclipse.tahu.protobuf"
_F = descriptor_pb2.FieldDescriptorProto

# Sparkplug B datatypes (the numbers of `Payload.Metric.datatype`).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT, UUID = 9, 10, 11, 12, 13, 14, 15
SIGNED_BITS: Final = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}


def _field(
    message: Any, name: str, number: int, kind: int, *, repeated: bool = False, oneof: int = -1
) -> None:
    field = message.field.add(name=name, number=number, type=kind)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if kind == _F.TYPE_MESSAGE:
        field.type_name = f".{_PACKAGE}.Payload.Metric"
    if oneof >= 0:
        field.oneof_index = oneof


def _build() -> tuple[type[Any], type[Any]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="agent/sparkplug_b.proto", package=_PACKAGE, syntax="proto2"
    )
    payload = file.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, _F.TYPE_STRING),
        ("alias", 2, _F.TYPE_UINT64),
        ("timestamp", 3, _F.TYPE_UINT64),
        ("datatype", 4, _F.TYPE_UINT32),
        ("is_historical", 5, _F.TYPE_BOOL),
        ("is_transient", 6, _F.TYPE_BOOL),
        ("is_null", 7, _F.TYPE_BOOL),
    ):
        _field(metric, name, number, kind)
    for name, number, kind in (
        ("int_value", 10, _F.TYPE_UINT32),
        ("long_value", 11, _F.TYPE_UINT64),
        ("float_value", 12, _F.TYPE_FLOAT),
        ("double_value", 13, _F.TYPE_DOUBLE),
        ("boolean_value", 14, _F.TYPE_BOOL),
        ("string_value", 15, _F.TYPE_STRING),
        ("bytes_value", 16, _F.TYPE_BYTES),
    ):
        _field(metric, name, number, kind, oneof=0)
    _field(payload, "timestamp", 1, _F.TYPE_UINT64)
    _field(payload, "metrics", 2, _F.TYPE_MESSAGE, repeated=True)
    _field(payload, "seq", 3, _F.TYPE_UINT64)
    _field(payload, "uuid", 4, _F.TYPE_STRING)
    _field(payload, "body", 5, _F.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()  # a pool of its own: no clash with other modules
    pool.Add(file)
    payload_class = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.Payload")
    )
    metric_class = message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{_PACKAGE}.Payload.Metric")
    )
    return payload_class, metric_class


Payload, Metric = _build()
