'''Paths, constants and small helpers shared by the test modules (fixtures are in conftest.py).'''
import contextlib
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the end-to-end training run (conftest.e2e_trained), shared by the end-to-end, patient-CT and
# distributed tests
CONFIG_DEMO = osp.join(ROOT, 'configs', 'demo', 'deeplesion_acs_7slice_demo.py')
#: Epochs of the end-to-end training (tests/conftest.py, e2e_trained; LR steps at the last two).
#: 10 (was 14 up to acsdet 0.4); ACSDET_TEST_EPOCHS=14 trains the model several README figures
#: were measured with.
EPOCHS = int(os.environ.get('ACSDET_TEST_EPOCHS', 10))


@contextlib.contextmanager
def seen_thickness(model):
    """``{layer name: [thickness tensor of each call]}`` of every AlignShift layer of ``model``
    while the block runs (what the network handed down as an argument)."""
    from acsdet.ops.shift import AlignShiftConv
    seen, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, AlignShiftConv):

            def hook(mod, args, name=name):
                t = args[1] if len(args) > 1 else None
                seen.setdefault(name, []).append(None if t is None else t.detach().clone())

            handles.append(m.register_forward_pre_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


#: The phantom's formats (conftest.phantom): a DeepLesion PNG folder, NIfTI in four storage
#: orientations, a DICOM series.
FORMATS = ['png', 'LPS', 'RAS', 'LPI', 'coronal', 'dicom']


def read_phantom(phantom, name):
    """The phantom (conftest.phantom) read from its ``name`` format."""
    from acsdet.io import read_ct
    kw = dict(series=phantom['uid']) if name == 'dicom' else {}
    if name == 'png':
        kw = dict(dl_info=str(phantom['data'] / 'DL_info.csv'))
    return read_ct(phantom['files'][name], **kw)
