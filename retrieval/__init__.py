"""Retrieval for RAG and similarity-based few-shot selection: embedders, chunking, FAISS indexes."""
