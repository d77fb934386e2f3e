-- SiCooperativeDB's four tables, as the sample has them (foreign keys are added after bulk loads).
CREATE TABLE associado (
    id_associado VARCHAR(50) PRIMARY KEY,
    nome VARCHAR(255) NOT NULL,
    data_nascimento DATE,
    estado_civil VARCHAR(50),
    escolaridade VARCHAR(100));
CREATE TABLE conta (
    id_conta VARCHAR(50) PRIMARY KEY,
    id_associado VARCHAR(50),
    tipo_conta VARCHAR(50), agencia VARCHAR(20), situacao_conta VARCHAR(50),
    data_criacao_conta DATE);
CREATE TABLE cartao (
    id_cartao VARCHAR(50) PRIMARY KEY,
    id_conta VARCHAR(50),
    numero_cartao VARCHAR(50), nome_impresso_cartao VARCHAR(150),
    bandeira_cartao VARCHAR(50), tipo_cartao VARCHAR(50), data_emissao DATE);
CREATE TABLE movimentacao_cartao (
    id_movimentacao_cartao VARCHAR(50) PRIMARY KEY,
    id_cartao VARCHAR(50),
    descricao_movimentacao VARCHAR(150),
    valor_movimentacao DECIMAL(10, 2) NOT NULL,
    data_movimentacao TIMESTAMP NOT NULL);
