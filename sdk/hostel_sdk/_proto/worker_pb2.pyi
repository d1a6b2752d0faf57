from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_KIND_UNSPECIFIED: _ClassVar[ErrorKind]
    ERROR_KIND_PROVIDER_RAISED: _ClassVar[ErrorKind]
    ERROR_KIND_NO_SUCH_METHOD: _ClassVar[ErrorKind]
    ERROR_KIND_BAD_ARGUMENTS: _ClassVar[ErrorKind]
    ERROR_KIND_BAD_PROVIDER_DATA: _ClassVar[ErrorKind]
    ERROR_KIND_BAD_RESULT: _ClassVar[ErrorKind]
    ERROR_KIND_PERMISSION_DENIED: _ClassVar[ErrorKind]
    ERROR_KIND_HOST_ERROR: _ClassVar[ErrorKind]
ERROR_KIND_UNSPECIFIED: ErrorKind
ERROR_KIND_PROVIDER_RAISED: ErrorKind
ERROR_KIND_NO_SUCH_METHOD: ErrorKind
ERROR_KIND_BAD_ARGUMENTS: ErrorKind
ERROR_KIND_BAD_PROVIDER_DATA: ErrorKind
ERROR_KIND_BAD_RESULT: ErrorKind
ERROR_KIND_PERMISSION_DENIED: ErrorKind
ERROR_KIND_HOST_ERROR: ErrorKind

class BlobChunk(_message.Message):
    __slots__ = ("id", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: int
    data: bytes
    def __init__(self, id: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class BlobReceipt(_message.Message):
    __slots__ = ("received",)
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    received: int
    def __init__(self, received: _Optional[int] = ...) -> None: ...

class HostCallRequest(_message.Message):
    __slots__ = ("api", "method", "args_json", "kwargs_json", "provider_data_json", "trace_context")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    API_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    KWARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    api: str
    method: str
    args_json: bytes
    kwargs_json: bytes
    provider_data_json: bytes
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, api: _Optional[str] = ..., method: _Optional[str] = ..., args_json: _Optional[bytes] = ..., kwargs_json: _Optional[bytes] = ..., provider_data_json: _Optional[bytes] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("method", "args_json", "kwargs_json", "provider_data_json", "timeout_s", "kwargs_text", "trace_context")
    class KwargsTextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    KWARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    KWARGS_TEXT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    method: str
    args_json: bytes
    kwargs_json: bytes
    provider_data_json: bytes
    timeout_s: float
    kwargs_text: _containers.ScalarMap[str, bytes]
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, method: _Optional[str] = ..., args_json: _Optional[bytes] = ..., kwargs_json: _Optional[bytes] = ..., provider_data_json: _Optional[bytes] = ..., timeout_s: _Optional[float] = ..., kwargs_text: _Optional[_Mapping[str, bytes]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("id", "call", "cancel")
    ID_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    call: CallRequest
    cancel: bool
    def __init__(self, id: _Optional[int] = ..., call: _Optional[_Union[CallRequest, _Mapping]] = ..., cancel: bool = ...) -> None: ...

class SessionReply(_message.Message):
    __slots__ = ("id", "reply")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    id: int
    reply: CallReply
    def __init__(self, id: _Optional[int] = ..., reply: _Optional[_Union[CallReply, _Mapping]] = ...) -> None: ...

class CallReply(_message.Message):
    __slots__ = ("value_json", "stream_begin", "items", "error", "stream_handle", "value_text", "mutations_json")
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    STREAM_BEGIN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STREAM_HANDLE_FIELD_NUMBER: _ClassVar[int]
    VALUE_TEXT_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    value_json: bytes
    stream_begin: StreamBegin
    items: StreamItems
    error: RemoteError
    stream_handle: StreamHandle
    value_text: bytes
    mutations_json: bytes
    def __init__(self, value_json: _Optional[bytes] = ..., stream_begin: _Optional[_Union[StreamBegin, _Mapping]] = ..., items: _Optional[_Union[StreamItems, _Mapping]] = ..., error: _Optional[_Union[RemoteError, _Mapping]] = ..., stream_handle: _Optional[_Union[StreamHandle, _Mapping]] = ..., value_text: _Optional[bytes] = ..., mutations_json: _Optional[bytes] = ...) -> None: ...

class StreamHandle(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class StreamBegin(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamItems(_message.Message):
    __slots__ = ("items_json",)
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    items_json: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, items_json: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RemoteError(_message.Message):
    __slots__ = ("kind", "type_name", "message", "traceback", "bases", "status_code", "attributes_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TYPE_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    BASES_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: ErrorKind
    type_name: str
    message: str
    traceback: str
    bases: _containers.RepeatedScalarFieldContainer[str]
    status_code: int
    attributes_json: bytes
    def __init__(self, kind: _Optional[_Union[ErrorKind, str]] = ..., type_name: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ..., bases: _Optional[_Iterable[str]] = ..., status_code: _Optional[int] = ..., attributes_json: _Optional[bytes] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeReply(_message.Message):
    __slots__ = ("methods", "sdk_version", "python_version")
    METHODS_FIELD_NUMBER: _ClassVar[int]
    SDK_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.RepeatedCompositeFieldContainer[MethodInfo]
    sdk_version: str
    python_version: str
    def __init__(self, methods: _Optional[_Iterable[_Union[MethodInfo, _Mapping]]] = ..., sdk_version: _Optional[str] = ..., python_version: _Optional[str] = ...) -> None: ...

class MethodInfo(_message.Message):
    __slots__ = ("name", "streams")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    streams: bool
    def __init__(self, name: _Optional[str] = ..., streams: bool = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("grace_s",)
    GRACE_S_FIELD_NUMBER: _ClassVar[int]
    grace_s: float
    def __init__(self, grace_s: _Optional[float] = ...) -> None: ...

class ShutdownReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
