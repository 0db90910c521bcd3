"""The official Python client against `indexstream dev-server`: bulk-index documents with
helpers.bulk and read them all back with helpers.scan (scroll), checking every id comes back once."""
import sys

from opensearchpy import OpenSearch, helpers


def main(url: str, count: int) -> None:
    client = OpenSearch(hosts=[url], timeout=60)
    info = client.info()
    assert info["version"]["distribution"] == "opensearch", info
    client.indices.create(index="pyclient", body={"settings": {"number_of_shards": 3}})
    actions = ({"_index": "pyclient", "_id": f"doc-{i}", "_source": {"n": i, "user": f"user-{i % 17}", "@timestamp": "2024-05-01T00:00:00Z"}} for i in range(count))
    ok, errors = helpers.bulk(client, actions, chunk_size=1000)
    assert ok == count and not errors, (ok, errors)
    client.indices.refresh(index="pyclient")
    assert client.count(index="pyclient")["count"] == count
    seen = set()
    for hit in helpers.scan(client, index="pyclient", query={"query": {"match_all": {}}}, size=500):
        assert hit["_id"] not in seen, f"{hit['_id']} returned twice"
        seen.add(hit["_id"])
        assert hit["_source"]["n"] == int(hit["_id"].split("-")[1])
    assert len(seen) == count, f"scan returned {len(seen)} of {count}"
    print(f"opensearch-py: bulk-indexed and scanned {count} documents")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10_000)
