"""A second oracle for compatibility verdicts: the PyPI `avro` package's
ReaderWriterCompatibilityChecker (an implementation independent of ours). Reads JSON lines
{"reader": text, "writer": text} and prints {"verdict": compatible|incompatible|error:..}.
"""
import warnings

warnings.simplefilter("ignore")
import json, sys
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
checker = ReaderWriterCompatibilityChecker()
for line in sys.stdin:
    case = json.loads(line)
    try:
        r = avro.schema.parse(case["reader"]); w = avro.schema.parse(case["writer"])
        res = checker.get_compatibility(r, w).compatibility
        out = "compatible" if res == SchemaCompatibilityType.compatible else "incompatible"
    except RecursionError:
        out = "error:RecursionError"
    except Exception as e:
        out = "error:" + type(e).__name__ + ": " + str(e)[:120]
    print(json.dumps({"name": case.get("name"), "verdict": out}), flush=True)
