'''Paths and constants shared by the test modules (fixtures are in conftest.py).'''
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the end-to-end training run (conftest.e2e_trained), shared by the end-to-end, patient-CT and
# distributed tests
CONFIG_DEMO = osp.join(ROOT, 'configs', 'demo', 'deeplesion_acs_7slice_demo.py')
EPOCHS = 14
