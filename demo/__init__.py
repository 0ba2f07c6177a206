"""The Gradio demo of zoo (installed as `zoo.demo`)."""
