"""Drives a running denorm with the PyPI `postgrest` client (postgrest-py),
unmodified: select, filters, or/and, order, range, count, single object,
CSV. Usage: client.py BASE_URL (e.g. http://127.0.0.1:7878/views).
Prints one line per check; exits non-zero on the first failure."""

import sys

import httpx
from openapi_spec_validator import validate
from postgrest import APIError, CountMethod, SyncPostgrestClient


FAILURES = []


def check(name, got, want):
    if got != want:
        print(f"FAIL {name}: got {got!r}, want {want!r}")
        FAILURES.append(name)
    else:
        print(f"ok {name}")


def ids(response):
    return [row["id"] for row in response.data]


def main(base):
    client = SyncPostgrestClient(base)
    items = lambda: client.from_("catalog")  # noqa: E731

    r = items().select("*").order("id").execute()
    check("select *", ids(r), [1, 2, 3, 4, 5])
    check("row shape", r.data[0], {"id": 1, "name": "red mug", "price": 2.5, "in_stock": 1, "tags": '["kitchen","red"]'})
    check("eq", ids(items().select("id").eq("id", 3).execute()), [3])
    check("neq/gt", ids(items().select("id").neq("id", 3).gt("price", 2.5).order("id").execute()), [2, 4, 5])
    check("lte/lt", ids(items().select("id").lte("price", 3).lt("id", 5).order("id").execute()), [1, 2])
    check("in", ids(items().select("id").in_("id", [1, 5, 9]).order("id").execute()), [1, 5])
    check("is null", ids(items().select("id").is_("price", None).execute()), [3])
    check("is true (0/1 column)", ids(items().select("id").is_("in_stock", True).order("id").execute()), [1, 3, 5])
    check("not.is", ids(items().select("id").not_.is_("price", None).order("id").execute()), [1, 2, 4, 5])
    check("like", ids(items().select("id").like("name", "%mug").order("id").execute()), [1, 2])
    check("ilike", ids(items().select("id").ilike("name", "RED%").order("id").execute()), [1, 3])
    check("text_search plain", ids(items().select("id").text_search("name", "red", {"type": "plain"}).order("id").execute()), [1, 3])
    check("fts", ids(items().select("id").fts("name", "red & mug").execute()), [1])
    check("contains", ids(items().select("id").contains("tags", ["kitchen"]).order("id").execute()), [1, 2])
    check("overlaps", ids(items().select("id").overlaps("tags", ["wood", "light"]).order("id").execute()), [4, 5])
    check("or", ids(items().select("id").or_("price.gt.100,price.is.null").order("id").execute()), [3, 5])
    check(
        "or with nested and",
        ids(items().select("id").or_("id.eq.1,and(in_stock.eq.0,price.gt.10)").order("id").execute()),
        [1, 4],
    )
    check("not.or", ids(items().select("id").not_.or_("id.lt.3,id.gt.4").execute()), [3, 4])
    check("order desc nullslast", ids(items().select("id").order("price", desc=True, nullsfirst=False).execute()), [5, 4, 2, 1, 3])
    check("order nullsfirst", ids(items().select("id").order("price", nullsfirst=True).limit(2).execute()), [3, 1])
    check("range", ids(items().select("id").order("id").range(1, 3).execute()), [2, 3, 4])
    check("limit/offset", ids(items().select("id").order("id").limit(2).offset(3).execute()), [4, 5])
    counted = items().select("id", count=CountMethod.exact).order("id").range(0, 1).execute()
    check("count exact", (ids(counted), counted.count), ([1, 2], 5))
    check("count planned", items().select("id", count=CountMethod.planned).lt("id", 3).execute().count, 2)
    check("alias, cast, json path", items().select("n:name,p:price::text,first:tags->>0").eq("id", 1).execute().data, [{"n": "red mug", "p": "2.5", "first": "kitchen"}])
    check("single", items().select("id,name").eq("id", 2).single().execute().data, {"id": 2, "name": "blue mug"})
    check("maybe_single none", items().select("id").eq("id", 99).maybe_single().execute(), None)
    try:
        items().select("id").single().execute()
        check("single of many is an error", "no error", "APIError")
    except APIError as e:
        check("single of many is an error", (e.code, e.details), ("PGRST116", "The result contains more than one row"))
    check("csv", items().select("id,name").in_("id", [3, 4]).order("id").csv().execute().data, 'id,name\n3,"red, chair"\n4,lamp')
    try:
        items().select("id").eq("nope", 1).execute()
        check("unknown column is an error", "no error", "APIError")
    except APIError as e:
        check("unknown column is an error", (e.code, "nope" in e.message), ("bad_parameter", True))
    try:
        items().select("id").range_lt("price", (1, 2)).execute()
        check("range operator refused", "no error", "APIError")
    except APIError as e:
        check("range operator refused", ("compares ranges" in e.message), True)
    spec = httpx.get(base.removesuffix("/views") + "/").json()
    try:
        validate(spec)
        check("GET / is a valid OpenAPI document", sorted(spec["paths"])[:2], ["/health", "/metrics"])
    except Exception as e:  # noqa: BLE001 - any validation error is the failure
        check("GET / is a valid OpenAPI document", str(e)[:500], "valid")
    check("OpenAPI describes the view", sorted(spec["components"]["schemas"]["catalog"]["properties"]), ["id", "in_stock", "name", "price", "tags"])
    if FAILURES:
        sys.exit(1)
    print("all ok")


if __name__ == "__main__":
    main(sys.argv[1])
