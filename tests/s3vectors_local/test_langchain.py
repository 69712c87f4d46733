"""The unmodified langchain-aws vector store runs against the local endpoint."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from langchain_aws.vectorstores import AmazonS3Vectors
from langchain_core.embeddings import Embeddings


class HashEmbeddings(Embeddings):
    """Deterministic 32-d embeddings from word hashes: texts sharing words are close."""

    def _one(self, text: str) -> list[float]:
        v = np.zeros(32)
        for word in text.lower().split():
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 32] += 1.0
        return (v / (np.linalg.norm(v) or 1.0)).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def test_add_texts_then_filtered_similarity_search(ep: Any) -> None:
    client = ep.client()
    client.create_vector_bucket(vectorBucketName="lc-bucket")
    store = AmazonS3Vectors(vector_bucket_name="lc-bucket", index_name="lc-index", embedding=HashEmbeddings(),
                            non_filterable_metadata_keys=["_page_content"], client=client)
    texts = ["the cat sat on the mat", "dogs chase cats in the park", "the stock market fell today",
             "a cat and a dog play", "markets rally as stocks rise"]
    metadatas = [{"topic": "pets"}, {"topic": "pets"}, {"topic": "finance"}, {"topic": "pets"},
                 {"topic": "finance"}]
    ids = store.add_texts(texts, metadatas, ids=[f"doc{i}" for i in range(5)])
    assert ids == [f"doc{i}" for i in range(5)]
    index = client.get_index(vectorBucketName="lc-bucket", indexName="lc-index")["index"]
    assert index["dimension"] == 32 and index["distanceMetric"] == "cosine"

    emb = HashEmbeddings()
    q = np.array(emb.embed_query("cat on the mat"))
    dist = {f"doc{i}": 1.0 - float(np.dot(q, emb.embed_documents([t])[0])) for i, t in enumerate(texts)}
    pets = sorted((k for k in dist if metadatas[int(k[3:])]["topic"] == "pets"), key=lambda k: (dist[k], k))
    docs = store.similarity_search("cat on the mat", k=2, filter={"topic": {"$eq": "pets"}})
    assert [d.id for d in docs] == pets[:2] and "doc0" in pets[:2]
    assert docs[0].page_content == "the cat sat on the mat" and docs[0].metadata == {"topic": "pets"}
    scored = store.similarity_search_with_score("stocks and markets", k=5, filter={"topic": "finance"})
    assert {d.id for d, _ in scored} == {"doc2", "doc4"}
    assert all(0.0 <= s <= 2.0 for _, s in scored)
    assert [d.id for d in store.get_by_ids(["doc4", "doc1"])] == ["doc4", "doc1"]
    store.delete(["doc0"])
    assert "doc0" not in [d.id for d in store.similarity_search("cat on the mat", k=5)]
