"""acsdet: ACS convolutions and universal lesion detection on DeepLesion, on MMDetection 3.x.

Exact versions are pinned once, in ``requirements/constraints.txt``; ``make setup`` applies them.
The ranges here only state what acsdet is known to work with.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def add_mim_extension():
    """Ship the configs inside the package, as MMDetection's ``mmdet/.mim``: ``acsdet/.mim/configs``
    is a link to ``configs/`` for an editable install and a copy for a wheel or an sdist."""
    editable = any(c in sys.argv for c in ('develop', 'editable_wheel'))
    target = osp.join(ROOT, 'acsdet', '.mim', 'configs')
    source = osp.join(ROOT, 'configs')
    if not osp.isdir(source):  # building from an sdist: the copy is already there
        return
    if osp.lexists(target):
        if osp.islink(target) or osp.isfile(target):
            os.remove(target)
        else:
            shutil.rmtree(target)
    os.makedirs(osp.dirname(target), exist_ok=True)
    if editable:
        os.symlink(osp.relpath(source, osp.dirname(target)), target)
    else:
        shutil.copytree(source, target)


def read_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'acsdet', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


DICOM = [
    'python-gdcm',  # pydicom's decoder of JPEG lossless / JPEG-LS / JPEG 2000 pixel data
    'highdicom>=0.23',  # DICOM SEG and TID 1500 SR outputs
]
# make test (dcmqi: the second, independent reader of the DICOM outputs), make lint
DEV = DICOM + ['pytest>=7,<9', 'pytest-xdist>=3', 'dcmqi', 'flake8', 'isort', 'yapf']

add_mim_extension()
setup(
    name='acsdet',
    version=read_version(),
    description='ACS convolutions (2D->3D) and universal lesion detection on DeepLesion, '
    'built on MMDetection 3.x',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['acsdet', 'acsdet.*']),
    include_package_data=True,
    package_data={'acsdet': ['.mim/configs/**/*.py', '.mim/configs/*.yml', '.mim/configs/*.md']},
    entry_points={'console_scripts': ['acsdet = acsdet.cli:main']},
    install_requires=[
        'torch>=2.5',  # weights-only checkpoint loading with a scoped allow-list
        'mmengine>=0.10.4,<0.11',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet>=3.3.0,<3.4',
        'opencv-python-headless',
        'pycocotools',
        'numpy',
        'scipy',
        'matplotlib',
        'tqdm',
        'SimpleITK>=2.2',
        'pydicom>=3.0',  # DICOM headers, enhanced (multi-frame) CT
        'pyyaml',  # the model index (configs/metafile.yml)
        'setuptools<82',
    ],
    extras_require={
        # DICOM SEG / SR outputs and compressed enhanced CT: pip install acsdet[dicom]
        'dicom': DICOM,
        # everything the suite needs; acsconv (the official operators, the tests' reference)
        # declares torchvision and seven packages it does not import, so `make setup` installs
        # `dev` and then acsconv without its dependencies
        'dev': DEV,
        'tests': DEV + ['acsconv==0.1.1'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
