use std::rc::Rc;

use super::op::Op;

/// Handle of a tensor in a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub(crate) usize);

impl TensorId {
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// Who owns a tensor's memory and when it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Written once per step by the node that produces it; the planner may give its buffer to
    /// another activation whose lifetime does not overlap.
    Activation,
    /// Written by the host before each step (a batch, its labels, the learning rate).
    Input,
    /// Uploaded once when the graph is compiled (the autodiff seed, test coefficients).
    Constant,
    /// Learnable and persistent, shared by name between graphs through a [`super::Store`].
    Parameter,
    /// Persistent but not learnable: BN running statistics, optimiser state.
    State,
    /// Learnable memory holding several parameters one after the other (see [`Graph::pack`]):
    /// the ops that use them together read it whole, and the optimiser updates it as one.
    Pack,
}

impl Role {
    /// Whether the tensor is an entry of a [`super::Store`] by its own name (a checkpoint key)
    /// and outlives one executor.
    pub fn is_stored(self) -> bool {
        matches!(self, Role::Parameter | Role::State)
    }

    /// Whether the optimiser updates the tensor's memory (a packed parameter is updated with its
    /// pack).
    pub fn is_learnable_memory(self) -> bool {
        matches!(self, Role::Parameter | Role::Pack)
    }
}

/// Where a packed parameter lives: `offset` elements into `pack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub pack: TensorId,
    pub offset: usize,
}

/// Initial contents of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Data::F32(v) => bytemuck::cast_slice(v),
            Data::U32(v) => bytemuck::cast_slice(v),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub role: Role,
    /// Initial contents of parameters, states and constants (zeros when absent).
    pub init: Option<Data>,
    /// For a parameter kept in a pack, where.
    pub packed: Option<Packed>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
}

/// One op applied to input tensors, producing output tensors. Ops with side effects (an optimiser
/// update, BN running statistics) write persistent inputs in place.
#[derive(Debug, Clone)]
pub struct Node {
    pub op: Rc<dyn Op>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// A static computation: tensors plus the nodes that compute them, in execution order.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    tensors: Vec<TensorInfo>,
    nodes: Vec<Node>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, info: TensorInfo) -> TensorId {
        assert!(
            info.numel() > 0,
            "tensor `{}` has an empty shape {:?}",
            info.name,
            info.shape
        );
        if let Some(init) = &info.init {
            assert_eq!(
                init.len(),
                info.numel(),
                "initial data of `{}` does not match its shape {:?}",
                info.name,
                info.shape
            );
        }
        self.tensors.push(info);
        TensorId(self.tensors.len() - 1)
    }

    fn tensor_of(
        &mut self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        role: Role,
        init: Option<Data>,
    ) -> TensorId {
        self.add(TensorInfo {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            role,
            init,
            packed: None,
        })
    }

    /// An f32 tensor the host writes before each step.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.tensor_of(name, shape, DType::F32, Role::Input, None)
    }

    /// A u32 tensor the host writes before each step (class labels).
    pub fn input_u32(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.tensor_of(name, shape, DType::U32, Role::Input, None)
    }

    /// A fixed f32 tensor uploaded when the graph is compiled.
    pub fn constant(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> TensorId {
        self.tensor_of(
            name,
            shape,
            DType::F32,
            Role::Constant,
            Some(Data::F32(values)),
        )
    }

    /// A fixed u32 tensor uploaded when the graph is compiled.
    pub fn constant_u32(&mut self, name: &str, shape: &[usize], values: Vec<u32>) -> TensorId {
        self.tensor_of(
            name,
            shape,
            DType::U32,
            Role::Constant,
            Some(Data::U32(values)),
        )
    }

    /// A learnable tensor; `name` is its checkpoint key (PyTorch state-dict names for models).
    pub fn parameter(&mut self, name: &str, shape: &[usize], init: Vec<f32>) -> TensorId {
        self.tensor_of(
            name,
            shape,
            DType::F32,
            Role::Parameter,
            Some(Data::F32(init)),
        )
    }

    /// Keeps the parameters `members` one after the other in one pack called `name`, a flat
    /// tensor that ops read where they use the members together (the stacked weights of
    /// convolutions that run as one product), with no copy per step. Each member keeps its name,
    /// shape and initial values: checkpoints and interop see the members, the optimiser and the
    /// ops the pack. A member can no longer be an op's input.
    pub fn pack(&mut self, name: &str, members: &[TensorId]) -> TensorId {
        let mut values = Vec::new();
        for &m in members {
            let info = &self.tensors[m.0];
            assert!(
                info.role == Role::Parameter && info.packed.is_none(),
                "`{}` is not an unpacked parameter",
                info.name
            );
            assert!(
                self.nodes.iter().all(|n| !n.inputs.contains(&m)),
                "`{}` is already read by an op",
                info.name
            );
            match &info.init {
                Some(Data::F32(v)) => values.extend_from_slice(v),
                _ => unreachable!("parameters have f32 initial values"),
            }
        }
        let pack = self.tensor_of(
            name,
            &[values.len()],
            DType::F32,
            Role::Pack,
            Some(Data::F32(values)),
        );
        let mut offset = 0;
        for &m in members {
            self.tensors[m.0].packed = Some(Packed { pack, offset });
            offset += self.tensors[m.0].numel();
        }
        pack
    }

    /// A persistent, non-learnable tensor (running statistics, optimiser state).
    pub fn state(&mut self, name: &str, shape: &[usize], init: Vec<f32>) -> TensorId {
        self.tensor_of(name, shape, DType::F32, Role::State, Some(Data::F32(init)))
    }

    /// A new activation for an op to produce; named after the op and the node that will write it.
    pub fn activation(&mut self, op_name: &str, shape: &[usize]) -> TensorId {
        let name = format!("{op_name}#{}", self.nodes.len());
        self.tensor_of(&name, shape, DType::F32, Role::Activation, None)
    }

    /// A new u32 activation, for indices an op computes (nearest neighbours).
    pub fn activation_u32(&mut self, op_name: &str, shape: &[usize]) -> TensorId {
        let name = format!("{op_name}#{}", self.nodes.len());
        self.tensor_of(&name, shape, DType::U32, Role::Activation, None)
    }

    /// A new activation with the shape of `like`.
    pub fn activation_like(&mut self, op_name: &str, like: TensorId) -> TensorId {
        let shape = self.shape(like).to_vec();
        self.activation(op_name, &shape)
    }

    /// Appends a node. Ops call this from their builder functions.
    pub fn push(&mut self, op: impl Op + 'static, inputs: &[TensorId], outputs: &[TensorId]) {
        for &t in inputs {
            assert!(
                self.tensors[t.0].packed.is_none(),
                "`{}` reads `{}`, which is packed: read its pack",
                op.name(),
                self.tensors[t.0].name
            );
        }
        for &t in outputs {
            assert_eq!(
                self.tensors[t.0].role,
                Role::Activation,
                "`{}` writes `{}`, which is not an activation",
                op.name(),
                self.tensors[t.0].name
            );
            assert!(
                self.producer(t).is_none(),
                "`{}` is already written by another node",
                self.tensors[t.0].name
            );
        }
        self.nodes.push(Node {
            op: Rc::new(op),
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
        });
    }

    fn producer(&self, t: TensorId) -> Option<usize> {
        self.nodes.iter().position(|n| n.outputs.contains(&t))
    }

    pub fn tensor(&self, t: TensorId) -> &TensorInfo {
        &self.tensors[t.0]
    }

    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.tensors[t.0].shape
    }

    pub fn numel(&self, t: TensorId) -> usize {
        self.tensors[t.0].numel()
    }

    pub fn tensors(&self) -> impl Iterator<Item = (TensorId, &TensorInfo)> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (TensorId(i), t))
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Learnable tensors in declaration order (for models, the state-dict order), packed ones
    /// included.
    pub fn parameters(&self) -> Vec<TensorId> {
        self.tensors()
            .filter(|(_, t)| t.role == Role::Parameter)
            .map(|(id, _)| id)
            .collect()
    }

    /// The learnable memory an optimiser updates: unpacked parameters and packs, in declaration
    /// order.
    pub fn learnables(&self) -> Vec<TensorId> {
        self.tensors()
            .filter(|(_, t)| t.role.is_learnable_memory() && t.packed.is_none())
            .map(|(id, _)| id)
            .collect()
    }

    /// The tensor called `name`, if any.
    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors()
            .find(|(_, t)| t.name == name)
            .map(|(id, _)| id)
    }
}
