"""Every Avro-relevant method of the PyPI confluent-kafka SchemaRegistryClient (a client we
did not write) against a running relay's registry API, with its assertions.

Usage: registry_client_confluent.py URL USER:PASSWORD
Prints one line per checked method; exits non-zero on the first failure.
"""
import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

url, user_info = sys.argv[1], sys.argv[2]
S = "py-orders-value"
V1 = json.dumps({"type": "record", "name": "Order", "namespace": "py",
                 "fields": [{"name": "id", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "Order", "namespace": "py",
                 "fields": [{"name": "id", "type": "string"},
                            {"name": "note", "type": ["null", "string"], "default": None}]})
BREAKING = json.dumps({"type": "record", "name": "Order", "namespace": "py",
                       "fields": [{"name": "id", "type": "long"}]})
RECURSIVE = json.dumps({"type": "record", "name": "R",
                        "fields": [{"name": "f", "type": "R", "default": {}}]})


def client(authenticated=True):
    conf = {"url": url}
    if authenticated:
        conf["basic.auth.user.info"] = user_info
    return SchemaRegistryClient(conf)


def code_of(call):
    try:
        call()
    except SchemaRegistryError as e:
        return e.error_code
    raise AssertionError("expected a SchemaRegistryError")


def check(name, ok, detail=""):
    if not ok:
        print(f"FAILED {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


c = client()
check("get_schema_types", c.get_schema_types() == ["AVRO"], c.get_schema_types())
check("get_subjects (empty)", S not in c.get_subjects())
id1 = c.register_schema(S, Schema(V1, "AVRO"))
check("register_schema", isinstance(id1, int) and id1 > 0, id1)
check("register_schema is idempotent", client().register_schema(S, Schema(V1, "AVRO")) == id1)
full = c.register_schema_full_response(S, Schema(V1, "AVRO"))
check("register_schema_full_response", full.schema_id == id1, full)
check("get_schema", json.loads(c.get_schema(id1).schema_str) == json.loads(V1))
found = c.lookup_schema(S, Schema(V1, "AVRO"))
check("lookup_schema", (found.schema_id, found.version, found.subject) == (id1, 1, S), found)
latest = c.get_latest_version(S)
check("get_latest_version", (latest.schema_id, latest.version) == (id1, 1), latest)
check("get_version", c.get_version(S, 1).schema_id == id1)
check("get_versions", c.get_versions(S) == [1], c.get_versions(S))
versions = c.get_schema_versions(id1)
check("get_schema_versions", [(v.subject, v.version) for v in versions] == [(S, 1)], versions)
check("get_subjects_by_schema_id", c.get_subjects_by_schema_id(id1) == [S])
check("get_subjects", S in c.get_subjects())

check("test_compatibility", c.test_compatibility(S, Schema(V2, "AVRO")) is True)
check("test_compatibility verbose", c.test_compatibility(S, Schema(V2, "AVRO"), verbose=True) is True)
check("test_compatibility (breaking)", c.test_compatibility(S, Schema(BREAKING, "AVRO"), version=1) is False)
check("test_compatibility_all_versions", c.test_compatibility_all_versions(S, Schema(V2, "AVRO")) is True)
check("test_compatibility_all_versions verbose (breaking)",
      c.test_compatibility_all_versions(S, Schema(BREAKING, "AVRO"), verbose=True) is False)

check("register incompatible is 409", code_of(lambda: c.register_schema(S, Schema(BREAKING, "AVRO"))) == 409)
check("register recursive default is 42201", code_of(lambda: c.register_schema(S, Schema(RECURSIVE, "AVRO"))) == 42201)
check("get_version missing is 40402", code_of(lambda: c.get_version(S, 99)) == 40402)
check("get_latest_version unknown is 40401", code_of(lambda: c.get_latest_version("py-nope-value")) == 40401)
check("lookup_schema unknown is 40403", code_of(lambda: c.lookup_schema(S, Schema(BREAKING, "AVRO"))) == 40403)
check("get_schema unknown is 40403", code_of(lambda: c.get_schema(999999)) == 40403)
check("writes without credentials are 401",
      code_of(lambda: client(False).register_schema(S, Schema(V2, "AVRO"))) == 401)

check("get_compatibility (global)", c.get_compatibility() == "FULL_TRANSITIVE", c.get_compatibility())
check("set_compatibility", c.set_compatibility(S, "BACKWARD")["compatibility"] == "BACKWARD")
check("get_compatibility (subject)", c.get_compatibility(S) == "BACKWARD")
check("get_config", c.get_config(S).compatibility_level == "BACKWARD", c.get_config(S))
from confluent_kafka.schema_registry.schema_registry_client import (  # noqa: E402
    ConfigCompatibilityLevel, ServerConfig)
c.set_config(S, ServerConfig(compatibility=ConfigCompatibilityLevel.FULL))
check("set_config", c.get_compatibility(S) == "FULL")
check("delete_config", c.delete_config(S).compatibility_level == "FULL")
check("get_config (subject, none)", code_of(lambda: client().get_config(S)) == 40408)
check("get_mode", c.get_global_mode() == "READWRITE")

id2 = c.register_schema(S, Schema(V2, "AVRO"))
check("register v2", id2 != id1 and c.get_versions(S) == [1, 2], c.get_versions(S))
check("delete_version permanent first is 40407", code_of(lambda: c.delete_version(S, 2, permanent=True)) == 40407)
check("delete_version (soft)", c.delete_version(S, 2) == 2)
check("soft-deleted version is gone", client().get_versions(S) == [1])
check("get_versions deleted=True", client().get_versions(S, deleted=True) == [1, 2])
check("soft-deleted id still resolves", json.loads(client().get_schema(id2).schema_str) == json.loads(V2))
check("delete_version soft again is 40406", code_of(lambda: c.delete_version(S, 2)) == 40406)
check("delete_version (permanent)", c.delete_version(S, 2, permanent=True) == 2)
check("delete_subject permanent first is 40405", code_of(lambda: c.delete_subject(S, permanent=True)) == 40405)
check("delete_subject (soft)", c.delete_subject(S) == [1])
check("soft-deleted subject is gone", S not in client().get_subjects())
check("delete_subject soft again is 40404", code_of(lambda: c.delete_subject(S)) == 40404)
check("delete_subject (permanent)", c.delete_subject(S, permanent=True) == [1])
check("deleted for good", code_of(lambda: client().get_versions(S)) == 40401)
print("all ok", flush=True)
