"""look_up: a registry miss lists the names and suggests the close ones."""
import pytest

from acsdet.utils.lookup import UnknownName, close_names, look_up


def test_look_up_hits_and_suggests():
    table = {'acs': 1, '2.5d': 2, '3d': 3, 'a3d': 4, 'alignshift': 5}
    assert look_up('a3d', table, 'conv mode') == 4
    with pytest.raises(UnknownName) as e:
        look_up('alignshfit', table, 'conv mode')
    assert str(e.value) == ("conv mode 'alignshfit' is not one of 'acs', '2.5d', '3d', 'a3d', "
                            "'alignshift'; did you mean 'alignshift'?")
    assert isinstance(e.value, ValueError) and isinstance(e.value, KeyError)
    assert close_names('ACS', table) == ['acs']  # case only
    with pytest.raises(UnknownName, match=r"'zzzz' is not one of 'acs'.*'alignshift'$"):
        look_up('zzzz', table, 'conv mode')  # nothing close: no guess
    with pytest.raises(UnknownName, match='None is not one of'):
        look_up(None, table, 'conv mode')
