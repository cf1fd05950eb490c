"""The CPU facts read from /proc/cpuinfo: one parser for the library and the benchmarks."""

from bert_adapters.ops import host

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 207
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_fp16

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another block, not read
"""


def test_fields_of_the_first_processor_with_tabs_and_spaces_stripped():
    fields = host.cpuinfo_fields(XEON)
    assert fields["cpu family"] == "6" and fields["model"] == "207"
    assert fields["model name"] == "Intel(R) Xeon(R) Processor"
    assert host.cpu_flags(fields) == {"fpu", "avx2", "avx512f", "avx512_bf16", "avx512_fp16"}
    assert host.cpuinfo_fields("") == {}


def test_description_names_model_family_and_what_the_cpu_has():
    text = host.cpu_description(XEON)
    assert text.startswith("Intel(R) Xeon(R) Processor (family 6 model 207), ")
    assert "AMX: no, AVX-512 BF16: yes, AVX-512F: yes" in text
    amx = XEON.replace("avx512_fp16", "avx512_fp16 amx_tile amx_bf16")
    assert "AMX: yes" in host.cpu_description(amx)
    assert not host.intel_bf16_without_amx(amx)
    assert host.intel_bf16_without_amx(XEON)
    unknown = host.cpu_description("")
    assert "AMX: no, AVX-512 BF16: no, AVX-512F: no" in unknown and "family" not in unknown


def test_bf16_beats_fp32_with_amx_or_on_amd_with_avx512_bf16():
    amx = XEON.replace("avx512_fp16", "avx512_fp16 amx_tile amx_bf16")
    zen4 = XEON.replace("GenuineIntel", "AuthenticAMD")
    avx2 = XEON.replace("avx512f avx512_bf16 avx512_fp16", "")
    assert host.bf16_faster_than_fp32(amx) and host.bf16_faster_than_fp32(zen4)
    assert not host.bf16_faster_than_fp32(XEON)   # Intel, AVX-512 BF16, no AMX
    assert not host.bf16_faster_than_fp32(avx2.replace("GenuineIntel", "AuthenticAMD"))
    assert not host.bf16_faster_than_fp32("")
