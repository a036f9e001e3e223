"""The run-time form of a validated config: plain frozen objects, no pydantic.

Validation stays with the pydantic models (``edge-agent check`` and the start of ``run``); the
running agent reads only attributes. :func:`to_plain` turns validated models into :class:`Plain`
objects with the same attribute names, the models' ``ClassVar`` values and the models' behaviour,
which lives in pydantic-free mixin classes the model inherits (``class DeviceConfig(DeviceBase,
Frozen)``): the plain twin of a model class is built from those mixins alone, so unpickling a plain
config imports the mixins' modules, never a model's. Enums, tuples, paths, dicts and other plain
values pass through; ``SecretStr`` becomes :class:`Secret`.

A model adds values computed at validation (a loaded register profile) with a ``plain_extras()``
method returning them by attribute name. The field list has one source, the model: a twin class
takes the model's fields (``model_fields``) when it is made.

A model that defines behaviour of its own (a method or property no mixin has: a driver not moved
yet) is kept as it is, so the run time works on any config; it then loads pydantic for it, as before.
:func:`own_behaviour` names what keeps a model so.

This module, and every module a twin's mixins live in, must not import pydantic (an import-linter
contract checks the run-time modules).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import pickle
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

SECRET_MASK = "**********"  # what pydantic's SecretStr dumps as


class Secret:
    """A secret string (``SecretStr``'s run-time twin): hidden in repr and in dumps."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{SECRET_MASK}')"

    def __str__(self) -> str:
        return SECRET_MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        return Secret, (self._value,)


class Plain:
    """A frozen record of a validated model's fields (and ``plain_extras``), with its mixins' behaviour.

    Offers the two pydantic calls the run time makes on configs, so code reads both forms alike:
    ``model_dump(mode="json")`` (secrets starred) and ``model_copy(update=...)``.
    """

    __plain_fields__: tuple[str, ...] = ()  # the model's fields, in order (what model_dump writes)
    __plain_spec__: tuple = ()  # how to make this class again when unpickling (see _twin)

    def __init__(self, **values: Any):
        object.__setattr__(self, "__dict__", values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen (cannot delete {name!r})")

    def __reduce__(self):
        return _rebuild, (self.__plain_spec__, self.__dict__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plain):
            return NotImplemented
        return type(self).__plain_spec__[:2] == type(other).__plain_spec__[:2] and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(_hashable(self.__dict__[f]) for f in self.__plain_fields__)))

    def __repr__(self) -> str:
        body = ", ".join(f"{f}={self.__dict__[f]!r}" for f in self.__plain_fields__)
        return f"{type(self).__name__}({body})"

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        return {f: _dump(self.__dict__[f], mode) for f in self.__plain_fields__}

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Plain:
        return type(self)(**{**self.__dict__, **(update or {})})


def _hashable(v: Any) -> Any:
    return tuple(sorted(v.items())) if isinstance(v, dict) else v


def _dump(v: Any, mode: str) -> Any:
    if isinstance(v, Plain) or hasattr(v, "__pydantic_fields__"):  # (a model kept as it is: see to_plain)
        return v.model_dump(mode=mode)
    if isinstance(v, dict):
        return {(_json_key(_dump(k, mode)) if mode == "json" else k): _dump(x, mode) for k, x in v.items()}
    if isinstance(v, tuple | list):
        items = [_dump(x, mode) for x in v]
        return items if mode == "json" else type(v)(items)
    if mode != "json":
        return v
    if isinstance(v, Secret):
        return SECRET_MASK
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, PurePath):
        return str(v)
    if isinstance(v, dt.datetime):  # as pydantic writes them
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _json_key(k: Any) -> str:
    """A dict key as pydantic writes it in JSON (``{17: 2.0}`` -> ``{"17": 2.0}``)."""
    if isinstance(k, bool):
        return "true" if k else "false"
    return k if isinstance(k, str) else str(k)


# -- twins of model classes ---------------------------------------------------------------------------
_TWINS: dict[tuple, type[Plain]] = {}  # spec key -> class (here and in an unpickling process)
_BY_MODEL: dict[type, type[Plain]] = {}


def _twin(spec: tuple) -> type[Plain]:
    """The plain class for ``spec`` = (module, qualname, mixins, fields, class vars), made once."""
    module, qualname, mixins, fields, class_vars = spec
    # class variables are part of the key: models made by one factory share a qualname, not their values
    key = (module, qualname, mixins, fields, pickle.dumps(class_vars, protocol=pickle.HIGHEST_PROTOCOL))
    cls = _TWINS.get(key)
    if cls is None:
        ns = {**dict(class_vars), "__module__": module, "__qualname__": qualname, "__plain_fields__": fields,
              "__plain_spec__": spec, "__doc__": f"Plain twin of {module}.{qualname}."}
        cls = type(qualname.rpartition(".")[2], (*mixins, Plain), ns)
        _TWINS[key] = cls
    return cls


def _rebuild(spec: tuple, values: dict[str, Any]) -> Plain:
    return _twin(spec)(**values)


def _is_model_class(c: type) -> bool:
    return hasattr(c, "__pydantic_fields__") or c.__module__.startswith(("pydantic.", "pydantic_core"))


def twin_of(model_cls: type) -> type[Plain]:
    """The plain class of a pydantic model class (mixins: the model's non-pydantic bases)."""
    cls = _BY_MODEL.get(model_cls)
    if cls is not None:
        return cls
    found = [c for c in model_cls.__mro__[1:] if c is not object and not _is_model_class(c)
             and c.__module__ not in ("typing", "builtins", "abc")]
    mixins = tuple(c for c in found if not any(o is not c and issubclass(o, c) for o in found))
    class_vars = tuple(sorted((n, getattr(model_cls, n)) for n in getattr(model_cls, "__class_vars__", ())
                              if not any(n in vars(m) and vars(m)[n] is getattr(model_cls, n) for m in mixins)))
    spec = (model_cls.__module__, model_cls.__qualname__, mixins, tuple(model_cls.model_fields), class_vars)
    cls = _BY_MODEL[model_cls] = _twin(spec)
    return cls


_VALIDATOR_KINDS = ("validators", "field_validators", "root_validators", "model_validators")
# what a twin cannot do: a computed field is a value, a serializer changes what a dump writes
_DUMP_KINDS = ("field_serializers", "model_serializers", "computed_fields")
OURS = ("agent.", "drivers.", "firmware_bridge.")  # the packages whose models are twinned
_OWN_EXEMPT = frozenset({"model_config", "plain_extras", "_abc_impl"})
_READY: dict[type, tuple[str, ...]] = {}


def field_names(config: Any) -> tuple[str, ...]:
    """The field names of a config object, plain twin or model alike."""
    cls = type(config)
    return cls.__plain_fields__ if issubclass(cls, Plain) else tuple(cls.model_fields)


def own_behaviour(model_cls: type) -> tuple[str, ...]:
    """``qualname.attr`` of what a model class (or a model base) defines besides fields, class
    variables and validators, and no mixin of its twin has: empty when the twin can stand in for it."""
    found = _READY.get(model_cls)
    if found is not None:
        return found
    mixin_names = {n for m in twin_of(model_cls).__mro__ if not issubclass(Plain, m) for n in vars(m)}
    out = []
    for klass in model_cls.__mro__:
        if not hasattr(klass, "__pydantic_fields__") or klass.__module__.startswith("pydantic"):
            continue
        decorators = klass.__pydantic_decorators__  # validators, serializers, computed fields by kind
        dumps = {n for kind in _DUMP_KINDS for n in getattr(decorators, kind, {})}
        out += [f"{klass.__qualname__}.{n}" for n in sorted(dumps)]
        validators = dumps | {n for kind in _VALIDATOR_KINDS for n in getattr(decorators, kind, {})}
        skip = validators | set(getattr(klass, "__class_vars__", ())) | set(klass.model_fields) | _OWN_EXEMPT
        for name, attr in vars(klass).items():
            if name.startswith("__") or name in skip or name in mixin_names:
                continue
            if callable(attr) or isinstance(attr, property | classmethod | staticmethod) or hasattr(attr, "__get__"):
                out.append(f"{klass.__qualname__}.{name}")
    found = _READY[model_cls] = tuple(out)
    return found


def twinned(model_cls: type) -> bool:
    """Whether :func:`to_plain` turns instances of ``model_cls`` into its twin: a model of this project
    (a third-party driver's keeps its model, and the process loads pydantic for it) whose twin can
    stand in for it (no behaviour of its own, no computed field or serializer, class variables that
    pickle)."""
    if not model_cls.__module__.startswith(OURS):
        return False
    try:
        return not own_behaviour(model_cls)
    except Exception:  # noqa: BLE001 - a class variable pickle cannot write: the model is handed over as it is
        return False


def to_plain(value: Any, _memo: dict[int, Any] | None = None) -> Any:
    """``value`` with every pydantic model in it turned into its :class:`Plain` twin (recursively:
    models, tuples, lists, dicts, frozensets; ``SecretStr`` -> :class:`Secret`); other values as they
    are, and so is a model with behaviour of its own (see :func:`own_behaviour`).

    A model shared by several places (one register profile for a hundred meters) gives one plain
    object. Plain values pass through, so calling it twice is harmless.
    """
    memo = {} if _memo is None else _memo
    key = id(value)
    if key in memo:
        return memo[key][1]
    out: Any = value
    cls = type(value)
    if hasattr(cls, "__pydantic_fields__") and twinned(cls):
        values = {f: to_plain(getattr(value, f), memo) for f in cls.model_fields}
        extras = getattr(value, "plain_extras", None)
        if extras is not None:
            values.update({k: to_plain(v, memo) for k, v in extras().items()})
        out = twin_of(cls)(**values)
    elif cls.__name__ == "SecretStr" and cls.__module__.startswith("pydantic"):
        out = Secret(value.get_secret_value())
    elif cls is tuple or cls is list:
        out = cls(to_plain(v, memo) for v in value)
    elif cls is dict:
        out = {k: to_plain(v, memo) for k, v in value.items()}
    elif cls is frozenset:
        out = frozenset(to_plain(v, memo) for v in value)
    memo[key] = (value, out)  # (value kept alive: its id stays its own while converting)
    return out
