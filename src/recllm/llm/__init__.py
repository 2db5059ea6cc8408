"""recllm.llm"""
