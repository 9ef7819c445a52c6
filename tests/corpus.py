"""A fixed corpus of the kinds of text agents send: prose, code, JSON, logs and many scripts."""

PROSE = (
    "The scheduler decides what goes into the context window before every model call. It keeps the task "
    "and the instructions, cuts oversized tool results, and explains each decision. Isn't that what you'd "
    "expect? We've measured it; they'll see. I'M SHOUTING NOW, and then I'm not.\n\n"
    "Second paragraph — with an em dash, “curly quotes”, ‘single ones’, an ellipsis… and 3.14159 digits.\n"
)

CODE = '''
def pack(segments: list[Segment], budget: int) -> PackResult:
    """Pack segments into a budget."""
    for i, segment in enumerate(segments):
        if segment.tokens > budget:  # too big
            raise BudgetError(f"segment {i} needs {segment.tokens} > {budget}")
    return PackResult(segments=segments, tokens=sum(s.tokens for s in segments))

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let v: Vec<u32> = (0..10).map(|x| x * x).collect();
    println!("{:?}", v);
    Ok(())
}
	// tabs	and    spaces   mixed
#include <stdio.h>
int main(void) { printf("%d\\n", 42); return 0; }
'''

JSON = (
    '{"id": "call_8f3a", "type": "function", "function": {"name": "read_file", "arguments": "{\\"path\\": '
    '\\"/src/main.rs\\", \\"lines\\": [1, 200]}"}, "results": [{"score": 0.9731, "ok": true, "tags": []}, '
    '{"score": -1.5e-3, "ok": false, "tags": ["a", "b"], "nested": {"deep": {"deeper": null}}}], '
    '"unicode": "caf\\u00e9 \\ud83c\\udf0d", "raw": "naïve café 🌍"}'
)

LOG = (
    "2026-11-27T10:14:03.123Z INFO  [worker-3] request_id=9f1c2e7a method=GET path=/api/v1/items?limit=50 "
    "status=200 duration_ms=12.7\n"
    "2026-11-27T10:14:03.456Z WARN  [worker-1] retrying connection to 10.0.0.12:5432 (attempt 3/5)\n"
    "2026-11-27T10:14:04.000Z ERROR [worker-2] Traceback (most recent call last):\n"
    '  File "/app/main.py", line 42, in <module>\n'
    "    main()\n"
    "ZeroDivisionError: division by zero\n"
    "\x1b[31mred ansi\x1b[0m \r\n"
    "    at com.example.Foo.bar(Foo.java:123)\r\n"
    "=================== 12 passed, 1 failed in 3.21s ===================\n"
)

SCRIPTS = {
    "greek": "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "cyrillic": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "arabic": "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر",
    "hebrew": "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
    "devanagari": "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
    "thai": "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "chinese": "我能吞下玻璃而不伤身体。敏捷的棕色狐狸跳过了懒狗。",
    "japanese": "いろはにほへと ちりぬるを わかよたれそ つねならむ カタカナ漢字",
    "korean": "다람쥐 헌 쳇바퀴에 타고파. 키스의 고유조건은 입술끼리 만나야 하고",
    "emoji": "👩‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 skin tone, 🇫🇷 regional indicators, keycap 1️⃣",
    "combining": "e\u0301 a\u0300\u0301\u0302 Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o",
    "mixed": "Mixing English, Русский, 中文, العربية and हिन्दी in one sentence: ok?",
    "control": "nul\x00 bell\x07 vt\x0b ff\x0c nbsp\u00a0 zwsp\u200b bom\ufeff ls\u2028 ps\u2029 end",
    "special_tokens": "<|endoftext|> <|fim_prefix|><|fim_middle|><|fim_suffix|> <|endofprompt|> <|im_start|>",
}

CORPUS = {"prose": PROSE, "code": CODE, "json": JSON, "log": LOG, **SCRIPTS}
