"""acsdet: ACS convolutions and universal lesion detection on DeepLesion, on MMDetection 3.x.

Exact versions are pinned once, in ``requirements/constraints.txt``; ``make setup`` applies them.
The ranges here only state what acsdet is known to work with.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'acsdet', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


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
        'python-gdcm',  # pydicom's decoder of JPEG lossless / JPEG-LS / JPEG 2000 pixel data
        'highdicom>=0.23',  # DICOM SEG and TID 1500 SR outputs
        'setuptools<82',
    ],
    extras_require={
        # make test (dcmqi: the second, independent reader of the DICOM outputs), make lint
        'tests': ['pytest>=7,<9', 'pytest-xdist>=3', 'dcmqi', 'flake8', 'isort', 'yapf'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
