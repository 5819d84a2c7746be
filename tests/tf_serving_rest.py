"""A stand-in for TF Serving's REST predict API, for tests: TensorFlow only, no tfnst.

It serves a SavedModel's signatures with the JSON mapping TF Serving documents
(tensorflow/serving, g3doc/api_rest.md) and implements (util/json_tensor.cc,
servables/tensorflow/predict_util.cc):

- request: ``signature_name`` (default ``serving_default``); exactly one of
  ``instances`` (row format: a list; with several named inputs a list of objects
  whose keys must equal the signature's inputs; values stacked on a new first
  dimension) or ``inputs`` (columnar: an object with every named input, or the
  value of a single input). Every input of the signature is required.
- a DT_STRING value is a JSON string, or ``{"b64": "<base64>"}`` (an object with
  that one key), decoded to bytes. Numbers for numeric inputs. NaN/Infinity allowed.
- response: row requests get ``{"predictions": [...]}``, one entry per item of the
  first dimension: the value itself with one output, an object of outputs with
  several. Columnar requests get ``{"outputs": value or {name: value}}``.
- a DT_STRING output is written as ``{"b64": …}`` only when its name ends in
  ``_bytes``; otherwise as a JSON string of the raw bytes (which must then be text).
- errors: ``{"error": "<message>"}`` with a 4xx status.

Usage: ``python tests/tf_serving_rest.py MODEL_BASE_PATH MODEL_NAME PORT``; prints
``ready`` once it listens on 127.0.0.1:PORT (loopback only).
"""

import base64
import json
import math
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import tensorflow as tf


class RequestError(Exception):
    pass


def is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def to_tensor(value, spec: tf.TensorSpec):
    def convert(v):
        if isinstance(v, list):
            return [convert(x) for x in v]
        if spec.dtype == tf.string:
            if is_b64(v):
                try:
                    return base64.b64decode(v["b64"], validate=True)
                except ValueError:
                    raise RequestError("Unable to base64 decode") from None
            if isinstance(v, str):
                return v.encode()
            raise RequestError(f"JSON Value: {json.dumps(v)} Type: {type(v).__name__} is not of expected type: string")
        if isinstance(v, dict) or isinstance(v, str) or isinstance(v, bool) != (spec.dtype == tf.bool):
            raise RequestError(f"JSON Value: {json.dumps(v)} is not of expected type: {spec.dtype.name}")
        return v

    try:
        return tf.constant(convert(value), dtype=spec.dtype)
    except (ValueError, TypeError) as e:
        raise RequestError(f"bad value for input {spec.name}: {e}") from None


def inputs_from_request(body: dict, specs: dict) -> tuple[dict, str]:
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(
            "Missing 'inputs' or 'instances' key"
            if "instances" not in body
            else "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"
        )
    names = set(specs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError("Expecting 'instances' to be an list/array with values")
        objects = isinstance(rows[0], dict) and not is_b64(rows[0])
        if not objects:
            if len(specs) > 1:
                raise RequestError(
                    "instances is a plain list, but expecting list of objects as multiple "
                    "input tensors required as per tensorinfo_map"
                )
            (name,) = names
            return {name: to_tensor(rows, specs[name])}, "row"
        columns = {n: [] for n in names}
        for i, row in enumerate(rows):
            if not (isinstance(row, dict) and not is_b64(row)):
                raise RequestError(f"Expecting object but got list at item {i} of input list")
            if set(row) != names:
                raise RequestError(
                    f"Failed to process element: {i} of 'instances' list. JSON object: "
                    f"{json.dumps(row)[:80]} keys must be equal to: {','.join(sorted(names))}"
                )
            for n in names:
                columns[n].append(row[n])
        return {n: to_tensor(columns[n], specs[n]) for n in names}, "row"
    value = body["inputs"]
    if not isinstance(value, dict) or is_b64(value):
        if len(specs) > 1:
            raise RequestError(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        (name,) = names
        return {name: to_tensor(value, specs[name])}, "columnar"
    for n in sorted(names):
        if n not in value:
            raise RequestError(f"Missing named input: {n} in 'inputs' object.")
    return {n: to_tensor(value[n], specs[n]) for n in names}, "columnar"


def json_value(array, as_bytes: bool):
    if isinstance(array, np.ndarray) and array.ndim > 0:
        return [json_value(a, as_bytes) for a in array]
    value = array.item() if hasattr(array, "item") else array  # bytes items of object arrays
    if isinstance(value, bytes):
        if as_bytes:
            return {"b64": base64.b64encode(value).decode()}
        return value.decode("utf-8")  # raises for binary data: TF Serving writes it raw
    return value


def response(outputs: dict, fmt: str) -> dict:
    arrays = {n: t.numpy() for n, t in outputs.items()}
    as_bytes = {n: outputs[n].dtype == tf.string and n.endswith("_bytes") for n in outputs}
    if fmt == "row":
        sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
        if None in sizes or len(sizes) != 1:
            raise RequestError("Tensor has no shape information or inconsistent batch size")
        (batch,) = sizes
        if len(arrays) == 1:
            ((name, a),) = arrays.items()
            return {"predictions": [json_value(a[i], as_bytes[name]) for i in range(batch)]}
        return {"predictions": [{n: json_value(a[i], as_bytes[n]) for n, a in arrays.items()} for i in range(batch)]}
    if len(arrays) == 1:
        ((name, a),) = arrays.items()
        return {"outputs": json_value(a, as_bytes[name])}
    return {"outputs": {n: json_value(a, as_bytes[n]) for n, a in arrays.items()}}


def make_handler(model, model_name: str, version: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status: int, payload: dict):
            data = json.dumps(payload, allow_nan=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if re.fullmatch(rf"/v1/models/{model_name}(/versions/\d+)?", self.path):
                self.reply(
                    200,
                    {
                        "model_version_status": [
                            {
                                "version": version,
                                "state": "AVAILABLE",
                                "status": {"error_code": "OK", "error_message": ""},
                            }
                        ]
                    },
                )
            else:
                self.reply(404, {"error": f"Servable not found for request: {self.path}"})

        def do_POST(self):
            if not re.fullmatch(rf"/v1/models/{model_name}(/versions/{version})?:predict", self.path):
                return self.reply(404, {"error": f"Servable not found for request: {self.path}"})
            try:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))),
                    parse_constant=lambda c: {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[c],
                )
                if not isinstance(body, dict):
                    raise RequestError("JSON Parse error: the request must be an object")
                name = body.get("signature_name", "serving_default")
                if name not in model.signatures:
                    raise RequestError(f'Serving signature name: "{name}" not found in signature def')
                signature = model.signatures[name]
                specs = signature.structured_input_signature[1]
                tensors, fmt = inputs_from_request(body, specs)
                self.reply(200, response(signature(**tensors), fmt))
            except (RequestError, json.JSONDecodeError, UnicodeDecodeError) as e:
                self.reply(400, {"error": str(e)})
            except tf.errors.InvalidArgumentError as e:
                self.reply(400, {"error": e.message})

    return Handler


def main():
    base, model_name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    versions = sorted((p for p in Path(base).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    model = tf.saved_model.load(str(versions[-1]))
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(model, model_name, versions[-1].name))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
