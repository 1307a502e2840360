"""The grading service: exam jobs through the pipeline, graded and summarized."""
