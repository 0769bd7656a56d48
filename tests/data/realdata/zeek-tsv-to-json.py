"""Zeek TSV (with its #fields/#types header) to Zeek JSON lines, as Zeek's
JSON writer writes them: unset fields (`-`) left out, `(empty)` sets as [],
time/interval/double as numbers, count/int/port as integers, bool as
true/false, sets and vectors as arrays. SEP replaces the `.` in field names
(`_` as some exports write them); PATH adds `_path` first."""
import json, sys

def convert(path, sep, with_path):
    fields = types = None
    log_path = None
    out = []
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("#"):
            tag, _, rest = line.partition("\t")
            if tag == "#fields":
                fields = rest.split("\t")
            elif tag == "#types":
                types = rest.split("\t")
            elif tag == "#path":
                log_path = rest
            continue
        rec = {}
        if with_path:
            rec["_path"] = log_path
        for name, ty, raw in zip(fields, types, line.split("\t")):
            if raw == "-":
                continue
            if ty.startswith(("set[", "vector[")):
                val = [] if raw == "(empty)" else raw.split(",")
            elif ty in ("time", "interval", "double"):
                val = float(raw)
            elif ty in ("count", "int", "port"):
                val = int(raw)
            elif ty == "bool":
                val = raw == "T"
            else:
                val = raw
            rec[name.replace(".", sep)] = val
        out.append(json.dumps(rec, separators=(",", ":")))
    return out

if __name__ == "__main__":
    src, sep, with_path = sys.argv[1], sys.argv[2], sys.argv[3] == "path"
    print("\n".join(convert(src, sep, with_path)))
