"""OpenAI's documented grader JSON examples (graders guide and graders/run API reference), verbatim
in content, with the item and sample each is meant for. Model graders get ``base_url`` at test time."""

STRING_CHECK = {
    "type": "string_check",
    "name": "Example string check grader",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}

TEXT_SIMILARITY = {
    "type": "text_similarity",
    "name": "Example text similarity grader",
    "input": "{{sample.output_text}}",
    "reference": "{{item.reference_answer}}",
    "evaluation_metric": "fuzzy_match",
}

SCORE_MODEL = {  # from the graders/run API reference
    "type": "score_model",
    "name": "Example score model grader",
    "input": [
        {
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "Score how close the reference answer is to the model answer on a 0-1 scale. Return only "
                    "the score.\n\nReference answer: {{item.reference_answer}}\n\nModel answer: {{sample.output_text}}",
                }
            ],
        }
    ],
    "model": "gpt-5-mini",
    "sampling_params": {"temperature": 1, "top_p": 1, "seed": 42},
}

SCORE_MODEL_GUIDE = {  # from the graders guide: string content, range, reasoning sampling params
    "type": "score_model",
    "name": "Example score model grader",
    "input": [
        {
            "role": "user",
            "content": "Score how close the reference answer is to the model answer. Score 1.0 if they are the same "
            "and 0.0 if they are different. Return just a floating point score\n\n"
            "Reference answer: {{item.reference_answer}}\n\nModel answer: {{sample.output_text}}",
        }
    ],
    "model": "o4-mini-2025-04-16",
    "range": [0, 1],
    "sampling_params": {"max_tokens": 32768, "top_p": 1, "reasoning_effort": "medium"},
}

LABEL_MODEL = {
    "name": "First label grader",
    "type": "label_model",
    "model": "gpt-4o-2024-08-06",
    "input": [
        {
            "type": "message",
            "role": "system",
            "content": {
                "type": "input_text",
                "text": "Classify the sentiment of the following statement as one of positive, neutral, or negative",
            },
        },
        {
            "type": "message",
            "role": "user",
            "content": {"type": "input_text", "text": "Statement: {{item.response}}"},
        },
    ],
    "passing_labels": ["positive"],
    "labels": ["positive", "neutral", "negative"],
}

PYTHON = {
    "type": "python",
    "name": "Example python grader",
    "image_tag": "2025-05-08",
    "source": (
        "from rapidfuzz import fuzz, utils\n\n"
        "def grade(sample, item) -> float:\n"
        '    output_text = sample["output_text"]\n'
        '    reference_answer = item["reference_answer"]\n'
        "    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0\n"
    ),
}

MULTI = {
    "type": "multi",
    "graders": {
        "name": {
            "name": "name",
            "type": "string_check",
            "input": "{{sample.output_tools[0].function.name}}",
            "operation": "eq",
            "reference": "{{item.name}}",
        },
        "arguments": {
            "name": "arguments",
            "type": "string_check",
            "input": "{{sample.output_tools[0].function.arguments}}",
            "operation": "eq",
            "reference": "{{item.arguments}}",
        },
    },
    "calculate_output": "0.5 * name + 0.5 * arguments",
}
