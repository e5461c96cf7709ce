"""utils/errors: one message naming parameters, the library's names or the CLI's flags."""
from acsdet.utils.errors import cli_message, naming


def test_a_message_names_parameters_as_the_library_and_as_the_cli_calls_them():
    e = naming(
        ValueError('/data/{x}/ct: lower {depth_chunk} (now 32) or set {outputs}'), 'depth_chunk',
        'outputs')
    assert isinstance(e, ValueError)
    assert str(e) == '/data/{x}/ct: lower depth_chunk (now 32) or set outputs'
    assert cli_message(e, dict(outputs='--output-type')) == (
        '/data/{x}/ct: lower --depth-chunk (now 32) or set --output-type')
    plain = OSError('series {series} stays as it is')
    assert cli_message(plain) == str(plain) == 'series {series} stays as it is'
    assert str(naming(OSError('{out_dir} o: refused'), 'out_dir')) == 'out_dir o: refused'
